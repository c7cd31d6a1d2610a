// evaluator: decides whether a candidate kernel is correct, and how fast it is.
//
// A task (tasks/<suite>/<task>/task.toml + reference.cpp + seeds/) says what an op computes, its
// argument list and the shapes to check and to time. The evaluator loads tasks with errors that
// name the file, field and value at fault; compiles the reference and the candidate through the
// compiler_bridge, each with a trampoline generated from the task's signature; then hands them to
// a worker process (`kforge worker`, reused across candidates, restarted when it dies or hangs),
// which runs native code in a sandboxed child of its own so that a segfault or an endless loop
// only becomes a status. There both run on the same seeded random inputs, every output is
// compared elementwise (atol + rtol·|want|, NaN/Inf positions must match) from poisoned buffers,
// and the candidate is timed on the bench shapes interleaved with the task's baseline (warm-up,
// adaptive repeats, a pool of input sets, cache flush between calls, robust statistics).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/common.hpp"
#include "common/expr.hpp"
#include "compiler_bridge/compiler_bridge.hpp"
#include "kernels_db/kernels_db.hpp"

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

// The categories a task may name (DESIGN §3.1, after MultiKernelBench), sorted.
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
// and the size that varies at run time ("M", tokens, where the task has one; else empty).
std::string problem_dtype(const Task& task);
std::string problem_dynamic_dim(const Task& task);

// Why `dims` is not a shape of `task`, or nothing: a size missing or unknown, a value below 1, a
// violated constraint, a quantized tensor without whole blocks.
std::optional<std::string> shape_problem(const Task& task, const Bindings& dims);

// The C++ that calls `entry` from `kforge_call(void* const* args)`, one pointer per task argument
// (tensor data, or the address of a size or scalar). Appended to every CPU source. Both functions
// return `result`: void for kernels, `const char*` for a GPU host baseline.
std::string trampoline_source(const Task& task, const std::string& entry, const std::string& result = "void");

// Compiles a CPU kernel of `task` through `compiler` (and its cache) as the evaluator does: the
// source with its params as defines and the trampoline appended; the shared object exports
// `kforge_call`. `file_name` is how the compiler log names the source; `libraries` are linked with
// -lNAME (a task's trusted vendor baseline only).
Result<Binary> compile_for_task(const HostCompiler& compiler, const Task& task, const Candidate& candidate,
                                const std::string& file_name, const std::vector<std::string>& libraries = {});

// Compiles the task's `baseline.cuda` file, a vendor library's kernel called from the host, through
// `compiler` (and its cache). Its contract (tasks/README.md): `extern "C" const char*
// kforge_baseline_open(void* stream)` loads the library and binds it to the harness's stream (a
// CUstream), once per worker; the entry takes the task's arguments, tensors as device pointers, and
// enqueues one call on that stream. Both return null, or what went wrong. The shared object exports
// both, the entry as `kforge_call`; a missing or mis-declared function is a compile error.
Result<Binary> compile_gpu_host_baseline(const HostCompiler& compiler, const Task& task);

// `extern "C" __global__ void entry(<the task's argument types>);` for CUDA and HIP sources:
// appended to a GPU kernel, it turns a signature that differs from the task's into a compile error.
// With `workspace`, a trailing `void*` argument: the candidate's workspace, zeroed before each call.
std::string gpu_entry_declaration(const Task& task, const std::string& entry, bool workspace = false);

// Compiles a GPU kernel of `task` for `gpu` (cuda, hip) with its params as defines and the task's
// signature declared after it; `arch` empty: the backend's default.
Result<Binary> compile_gpu_kernel(const Backend& gpu, const Task& task, const Candidate& candidate,
                                  const std::string& file_name, const std::string& arch = "");

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

// Loads `binary` (compile_gpu_kernel's build of `candidate`) on `device`. A kernel with no
// `// @kforge launch:` line is an error naming `file_name`.
Result<DeviceKernel> load_device_kernel(Device& device, Candidate candidate, const Binary& binary,
                                        const std::string& file_name);

// Why a kernel's #include lines are refused (anything but `#include <header>` without an absolute
// path or ".."), or nothing. Applies to every backend; static_check includes it.
std::optional<std::string> include_check(const std::string& source);

// Why a CPU kernel's source is refused before compiling ("line 3: 'fork' starts processes: ..."),
// or nothing when it passes. Comments are ignored.
std::optional<std::string> static_check(const std::string& source);

// ---- evaluation -------------------------------------------------------------------------------

enum class EvalStatus { ok, compile_error, incorrect, crash, timeout, runtime_error, rejected_cheat };
std::string to_string(EvalStatus status);

struct EvalOptions {
  double timeout_s = 180;         // the whole child evaluation
  std::uint64_t seed = 0;         // input seed; 0 draws one from the OS
  bool time_bench_shapes = true;  // false: correctness only
  double warmup_s = 0.025;        // and at least 3 calls
  int min_repeats = 10, max_repeats = 1000;
  double max_time_per_shape_s = 1.0;
  double target_relative_se = 0.005;  // stop once stderr(mean) < 0.5% of the median
  std::uint64_t memory_limit_bytes = std::uint64_t{16} << 30;  // the child's address space
  bool sandbox = true;  // rlimits and the seccomp filter around the child (tests/sandbox/)
  bool flush_cache = true;            // write 2x the last-level cache (at most 64 MiB) between calls
};

// Confines the calling process (the evaluation child, before loading the kernels): rlimits on core
// files, open files, address space and CPU time, and a seccomp filter refusing
// fork/exec, non-thread clones, sockets, ptrace, signals to other processes, executable memory,
// and writing, creating or changing files. Irreversible.
Status enter_sandbox(const EvalOptions& options);

struct TimingStats {
  int n = 0;
  double min_us = 0, median_us = 0, p20_us = 0, p80_us = 0, mean_us = 0, std_us = 0, cv = 0;
};

struct Mismatch {
  std::string tensor;
  std::int64_t index = 0;
  double got = 0, want = 0;
};

struct ShapeResult {
  Bindings dims;
  bool bench = false;     // a bench shape (timed) or a check shape
  bool held_out = false;  // the random shape the task does not list, drawn for this evaluation
  bool correct = false;
  double max_abs_error = 0, max_rel_error = 0;
  std::int64_t wrong_elements = 0;
  std::vector<Mismatch> mismatches;  // the first few
  std::optional<TimingStats> timing;
  std::optional<TimingStats> baseline_timing;  // the task's baseline, timed interleaved
  double speedup = 0;                          // baseline median / candidate median
  double gbps = 0, gflops = 0;  // from the task's byte and FLOP formulas, when timed
  double floor_us = 0;          // max(bytes / bandwidth, FLOPs / peak) on this machine (a GPU: measured bandwidth)
  double roofline_pct = 0;      // floor_us / median, in percent
};

struct EvalResult {
  EvalStatus status = EvalStatus::runtime_error;
  std::string message;  // one line saying why, for anything but ok
  std::string log;      // compiler log (full) for compile_error
  std::vector<ShapeResult> shapes;
  std::uint64_t seed = 0;
  std::string baseline;  // the kernel speedups are measured against ("cpu_naive.cpp")
  double speedup = 0;    // geometric mean over the bench shapes; 0 when untimed
  std::string output;    // what the kernel printed (the first 16 KiB), for its author
  bool verified = false;  // passed again in a fresh worker with a fresh seed (Evaluator::reverify)
  // What the compiler reported about the candidate's binary (GPU: registers, spills, static shared
  // memory; -1 where unknown, as on the cpu) and the binary's size; kept whenever the candidate
  // compiled, whatever failed after (no device, a crash): the search files kernels by them.
  ResourceUsage usage;
  std::int64_t code_bytes = 0;  // 0: it did not compile
};

nlohmann::json to_json(const EvalResult& result);
Result<EvalResult> eval_result_from_json(const nlohmann::json& j);

// ---- workers ----------------------------------------------------------------------------------
//
// Evaluations run in a worker process that reads requests and writes answers as frames
// ("<byte count>\n<JSON>") on its stdin and stdout; what kernels print goes to its stderr. A
// program that links the evaluator and keeps the default worker command answers `worker` as its
// first argument by calling worker_main() (kforge and the test programs do).

// Serves requests on `in_fd` until it closes, answering on `out_fd`; returns the exit code.
int worker_main(int in_fd = 0, int out_fd = 1);

// The parent's side of one worker: started on first use, reused across evaluations, started
// afresh after it dies, hangs or answers garbage. Not thread-safe.
class Worker {
 public:
  // How to start one, e.g. {"kforge", "worker"} or {"ssh", "gpu1", "kforge", "worker"}; empty:
  // this very program with the argument `worker`.
  explicit Worker(std::vector<std::string> command = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Sends `request`, waits up to `timeout_s` for the answer. A worker that dies, hangs or answers
  // garbage is killed, and the error says so with the end of what it printed.
  Result<nlohmann::json> call(const nlohmann::json& request, double timeout_s);
  // What the worker (and the kernels it ran) wrote to stderr during the last call, capped.
  const std::string& output() const { return output_; }
  // Ends the worker process; the next call starts a fresh one.
  void stop();
  // How many worker processes this handle has started.
  int starts() const { return starts_; }
  // How the last worker that died during a call ended: its exit code, -1 if killed or unknown.
  int exit_code() const { return exit_code_; }

 private:
  Status start();
  std::vector<std::string> command_;
  int pid_ = -1, socket_ = -1, stderr_ = -1, starts_ = 0, exit_code_ = -1;
  std::uint64_t requests_ = 0;  // each request's id; its answer must carry it back
  std::string output_;
};

// Holds a task with its compiled reference, and evaluates candidates against it in a worker.
class Evaluator {
 public:
  // Compiles the task's reference.cpp, and its baseline (seeds/cpu_naive.cpp, or seeds/cuda_naive.cu
  // for a GPU) when present; either failing to compile is an error here. Evaluations go to
  // `worker` (shared by the evaluators of one run), or to a worker of its own when none is given.
  // With `gpu` (cuda, hip), candidates are that backend's kernels, run on its device 0.
  static Result<Evaluator> create(Task task, const HostCompiler& compiler, std::shared_ptr<Worker> worker = nullptr,
                                  const Backend* gpu = nullptr);

  // Compiles `candidate` and runs the correctness and timing protocol in the worker. Every
  // failure of the candidate is a status in the result, never an Error.
  EvalResult evaluate(const Candidate& candidate, const std::string& file_name, const EvalOptions& options = {}) const;
  // The code hash (compiler_bridge's code_hash) of `candidate` compiled as evaluate() compiles it,
  // through the same cache; an error when it fails the static checks or does not compile.
  Result<std::string> code_hash(const Candidate& candidate, const std::string& file_name) const;

  // Before a result counts as a new best: `candidate` evaluated again in a fresh worker with a
  // fresh secret seed, twice when `first` claims more than 10x. Returns the first failure (its
  // message saying it came from re-verification), else the last run, marked verified.
  EvalResult reverify(const Candidate& candidate, const std::string& file_name, const EvalResult& first,
                      EvalOptions options = {}) const;

  // Whether the task's reference computes from its inputs, run in the worker (sandboxed) on the
  // check shapes: its outputs must differ between two input draws, and change when any one input
  // tensor is drawn afresh. An invalid_input Error says which failed and names reference.cpp.
  Status check_reference() const;

  const Task& task() const { return task_; }
  Worker& worker() const { return *worker_; }

 private:
  Evaluator(Task task, const HostCompiler& compiler, std::string reference_path, std::shared_ptr<Worker> worker)
      : task_(std::move(task)), compiler_(&compiler), reference_binary_(std::move(reference_path)),
        worker_(std::move(worker)) {}
  Task task_;
  const HostCompiler* compiler_;
  std::string reference_binary_;
  std::string baseline_binary_, baseline_name_;  // the task's seeds/cpu_naive.cpp, when it has one
  std::string probe_binary_;                     // measures the machine for the physics floor
  std::shared_ptr<Worker> worker_;
  const Backend* gpu_ = nullptr;
  nlohmann::json device_baseline_;  // the GPU baseline (the naive seed) as the worker's request describes it
  nlohmann::json vendor_baseline_;  // the task's baseline.cuda, compiled, timed instead where the worker loads it
  nlohmann::json copy_probe_;       // the GPU's bandwidth probe (compile_copy_probe), as the worker's request names it
  // Sends the request to the worker and reads its answer into `result`.
  EvalResult finish(const nlohmann::json& request, EvalResult result, const EvalOptions& options) const;
};

// ---- records (records.cpp) --------------------------------------------------------------------

// The library's records of a kernel and of one evaluation of it on `device`.
KernelRecord kernel_record(const Task& task, const std::string& backend, const Candidate& candidate,
                           const std::string& origin, const std::string& run_id, const std::string& operator_name,
                           const std::string& parent_key = "");
EvaluationRecord evaluation_record(const Task& task, const std::string& device, const EvalResult& result,
                                   const std::string& run_id);

}  // namespace kforge
