// task: what a kernel is asked to compute, and how a kernel of it is built and launched.
//
// A task (tasks/<suite>/<task>/: task.toml + reference.cpp + seeds/, format in tasks/README.md)
// names an op, its ordered arguments with their dtypes, shapes and input distributions, the
// shapes to check and to time, and its tolerance. This component loads tasks with errors that
// name the file, field and value at fault; holds the element types and ggml's quantizers; checks
// kernel sources statically; and builds a task's kernels: the trampoline that calls a CPU kernel
// with the task's arguments, the signature declared after a GPU kernel, compiling either through
// a compiler_bridge Backend, and loading and launching a GPU kernel on a device. The evaluator
// (which decides correctness and speed) and the inference core (which runs tuned kernels) both
// build on it; it knows nothing of either.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/common.hpp"
#include "common/expr.hpp"
#include "compiler_bridge/compiler_bridge.hpp"

namespace kforge {

// ---- tasks (format: tasks/README.md) ----------------------------------------------------------

// Element types of task arguments. f16 is IEEE binary16, held as its 16 bits (uint16_t). q8_0 and
// q4_0 are ggml's block formats (block_q8_0, block_q4_0): 32 elements per block, an f16 scale d
// first, then 32 int8 values (34 bytes), or 16 bytes of nibbles (18 bytes; element j in the low
// nibble of byte j, element j + 16 in its high nibble, value (nibble - 8) * d). Quantized tensors
// are inputs only, their shapes count elements, and their last extent is a multiple of 32.
enum class DType { f32, i32, f16, q8_0, q4_0 };
enum class ArgRole { in, out, inout, size, scalar };

const char* dtype_name(DType dtype);  // "f32", "q8_0", ...
std::optional<DType> dtype_from_name(const std::string& name);
bool is_quantized(DType dtype);  // q8_0, q4_0
// The storage unit of a dtype: elements per block (1, or 32 for the block formats) and its bytes
// (4 for f32 and i32, 2 for f16, 34 for q8_0, 18 for q4_0).
std::int64_t block_elements(DType dtype);
std::int64_t block_bytes(DType dtype);
// Bytes of a tensor of `elements` elements (a whole number of blocks).
std::int64_t tensor_bytes(DType dtype, std::int64_t elements);

// IEEE binary16 <-> binary32: round to nearest even, subnormals, infinities and NaN kept.
std::uint16_t f32_to_f16(float value);
float f16_to_f32(std::uint16_t bits);
// ggml's reference quantizers (quantize_row_q8_0_ref, quantize_row_q4_0_ref) and dequantizers:
// `elements` values (a multiple of 32) to and from `elements` / 32 blocks of `dtype`.
void quantize(DType dtype, const float* values, void* blocks, std::int64_t elements);
void dequantize(DType dtype, const void* blocks, float* values, std::int64_t elements);

// How an input tensor is filled: normal(mean, std), uniform(lo, hi) or int(lo, hi) inclusive.
// The bounds of int(lo, hi) may be expressions over the task's sizes ("int(0, V - 1)": an index
// into a V-row table); `lo`/`hi` hold them, and at() gives the numbers for one shape.
struct Distribution {
  enum class Kind { normal, uniform, integers } kind = Kind::normal;
  double a = 0, b = 1;
  std::optional<Expr> lo, hi;  // int(...) bounds that name sizes; a and b otherwise
  Distribution at(const Bindings& dims) const;
};

struct TaskArg {
  std::string name;
  DType dtype = DType::f32;
  ArgRole role = ArgRole::in;
  std::vector<Expr> shape;  // tensors only
  Distribution dist;        // in / inout tensors
  double value = 0;         // scalars
  bool is_tensor() const { return role == ArgRole::in || role == ArgRole::out || role == ArgRole::inout; }
};

struct Task {
  std::string suite, name;  // id() = "suite/name"
  std::string dir;          // the task folder
  std::string category, description;
  std::string dynamic_dim;  // `dynamic`, else "M" where M is a size, else empty
  std::vector<TaskArg> args;
  double atol = 0, rtol = 0;         // for f32 outputs; i32 outputs compare exactly
  std::optional<Expr> flops, bytes;  // per call, over the size symbols
  std::vector<Expr> constraints;     // must be non-zero for every shape
  std::vector<Bindings> bench_shapes, check_shapes;
  std::string reference_path;
  std::vector<std::string> seed_paths;  // seeds/*, sorted
  // A vendor library's kernel timed beside every CPU candidate instead of seeds/cpu_naive.cpp, when
  // it compiles and links on this machine (task.toml `baseline = { cpu = "...", cpu_libs = [...] }`).
  std::string cpu_baseline_path;
  std::vector<std::string> cpu_baseline_libraries;
  // A vendor library's kernel timed beside every CUDA candidate instead of seeds/cuda_naive.cu, when
  // the worker's machine has the library (`baseline = { cuda = "..." }`): host C++ that calls the
  // library (cuBLAS, found at run time) on the harness's stream; see compile_gpu_host_baseline.
  std::string cuda_baseline_path;

  std::string id() const { return suite + "/" + name; }
  std::vector<std::string> size_symbols() const;
};

// The categories a task may name (after MultiKernelBench; tasks/README.md), sorted.
const std::set<std::string>& task_categories();

// Loads one task folder. On failure the message lists every problem found, one per line, each
// as "<dir>/task.toml: <field>: <what is wrong>".
Result<Task> load_task(const std::string& dir);

// Why `dims` leaves a quantized tensor of `task` with a last extent that is not a whole number of
// blocks ("gives W (q8_0) a last extent 'K' = 33, not a multiple of its 32-element blocks"), or
// nothing. The loader rejects such bench and check shapes; held-out shapes avoid them.
std::optional<std::string> block_problem(const Task& task, const Bindings& dims);

// Why `dims` leaves an input of `task` an empty int(lo, hi) range ("draws ids from int(0, V - 1),
// empty at V=0"), or nothing.
std::optional<std::string> range_problem(const Task& task, const Bindings& dims);

// Every task of `suite` (or of every suite) under `root`, sorted by id.
Result<std::vector<Task>> load_tasks(const std::string& root, const std::string& suite = "");

// Finds "suite/name" under `root`.
Result<Task> find_task(const std::string& root, const std::string& id);

// Whether a seed file is a kernel of `backend`: cpu_*.cpp for cpu; cuda_*.cu for cuda; hip_*.hip
// and the CUDA ones (compiled through the CUDA prelude) for hip.
bool is_seed_for(const std::string& backend, const std::string& file_name);

// "M=16,N=4096"
std::string shape_label(const Bindings& dims);

// How the kernel library files a task's shapes as problems: the dtype of its first tensor ("f32"),
// and the size that varies at run time (the task's `dynamic`, by default M, tokens, where the task
// has one; else empty).
std::string problem_dtype(const Task& task);
std::string problem_dynamic_dim(const Task& task);

// Why `dims` is not a shape of `task`, or nothing: a size missing or unknown, a value below 1, a
// violated constraint, a quantized tensor without whole blocks.
std::optional<std::string> shape_problem(const Task& task, const Bindings& dims);

// The C++ that calls `entry` from `kforge_call(void* const* args)`, one pointer per task argument
// (tensor data, or the address of a size or scalar). Appended to every CPU source. Both functions
// return `result`: void for kernels, `const char*` for a GPU host baseline.
std::string trampoline_source(const Task& task, const std::string& entry, const std::string& result = "void");

// The line of a compiler log most worth one line of summary: the first diagnostic error or
// unresolved symbol (not collect2's "ld returned 1 exit status"), else the first line.
std::string first_error_line(const std::string& log);

// Compiles the task's `baseline.cuda` file, a vendor library's kernel called from the host, with the
// host backend `host` (through its cache). Its contract (tasks/README.md): `extern "C" const char*
// kforge_baseline_open(void* stream)` loads the library and binds it to the harness's stream (a
// CUstream), once per worker; the entry takes the task's arguments, tensors as device pointers, and
// enqueues one call on that stream. Both return null, or what went wrong. The shared object exports
// both, the entry as `kforge_call`; a missing or mis-declared function is a compile error.
Result<Binary> compile_gpu_host_baseline(const Backend& host, const Task& task);

// `extern "C" __global__ void entry(<the task's argument types>);` for CUDA and HIP sources:
// appended to a GPU kernel, it turns a signature that differs from the task's into a compile error.
// With `workspace`, a trailing `void*` argument: the candidate's workspace, zeroed before each call.
std::string gpu_entry_declaration(const Task& task, const std::string& entry, bool workspace = false);

// Compiles a kernel of `task` for `backend` as the evaluator does, and as the kernel library
// loads it: its params as defines; on the host (cpu), the trampoline appended, so the shared object
// exports `kforge_call`; on a GPU, the task's signature declared after it, so a kernel whose
// signature differs does not compile. `file_name` is how the compiler log names the source; `arch`
// empty: the backend's default; `libraries` are linked with -lNAME (a task's trusted vendor
// baseline on the cpu, never a candidate).
Result<Binary> compile_kernel(const Backend& backend, const Task& task, const Candidate& candidate,
                              const std::string& file_name, const std::string& arch = "",
                              const std::vector<std::string>& libraries = {});
// What compile_kernel asks of the backend, without compiling: for a worker that compiles for itself.
CompileRequest kernel_compile_request(const Backend& backend, const Task& task, const Candidate& candidate,
                                      const std::string& file_name, const std::string& arch = "",
                                      const std::vector<std::string>& libraries = {});
// What compile_gpu_host_baseline asks of the host backend, without compiling.
Result<CompileRequest> gpu_host_baseline_request(const Task& task);

// A GPU kernel of a task, loaded on a device, and how one call of it is launched: what the
// evaluator's device target and the kernel library share. A call's arguments follow kforge_call's
// convention, with device memory: args[i] is tensor i's device address (a DevicePtr as a pointer),
// or the host address of size or scalar i's 4 bytes.
struct DeviceKernel {
  Candidate candidate;
  std::unique_ptr<Module> module;

  // Its launches' dims at the task's sizes `sizes` (its params added), in order.
  Result<std::vector<LaunchDims>> launch_dims(const Bindings& sizes) const;
  // Its workspace in bytes at `sizes`; 0 when it declares none.
  Result<std::size_t> workspace_bytes(const Bindings& sizes) const;
  // The driver's argument array of one call: driver_args[i] points at slots[i], tensor i's device
  // address, or is args[i] for a size or scalar; then the workspace's slot when the kernel declares
  // one. `slots` and `driver_args` hold task.args.size() + 1 entries, and must outlive the launch.
  void marshal(const Task& task, void* const* args, DevicePtr workspace, DevicePtr* slots, void** driver_args) const;
  // Enqueues `launches` back to back with the marshalled arguments.
  Status launch(Device& device, const std::vector<LaunchDims>& launches, void** driver_args) const;
};

// Loads `binary` (compile_kernel's build of `candidate` for a GPU) on `device`. A kernel with no
// `// @kforge launch:` line is an error naming `file_name`.
Result<DeviceKernel> load_device_kernel(Device& device, Candidate candidate, const Binary& binary,
                                        const std::string& file_name);

// Why a kernel's #include lines are refused (anything but `#include <header>` without an absolute
// path or ".."), or nothing. Applies to every backend; static_check includes it.
std::optional<std::string> include_check(const std::string& source);

// Why a CPU kernel's source is refused before compiling ("line 3: 'fork' starts processes: ..."),
// or nothing when it passes. Comments are ignored.
std::optional<std::string> static_check(const std::string& source);

// The check a kernel of `backend` must pass before it is compiled: static_check for a kernel that
// runs in a process of ours (cpu), include_check for one that runs on a device.
std::optional<std::string> source_check(const Backend& backend, const std::string& source);

}  // namespace kforge
