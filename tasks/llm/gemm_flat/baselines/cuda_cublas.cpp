// @kforge entry: gemm_flat_cublas
// @kforge about: the vendor baseline on CUDA: cuBLAS cublasSgemm, W transposed (in column-major terms C^T = W A^T)
// Host C++ (tasks/README.md, `baseline.cuda`): cuBLAS is looked for at run time, so this compiles
// anywhere; kforge_baseline_open binds one handle to the harness's stream, once per worker.
#include <dlfcn.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace {

// The part of cublas_v2.h the cuBLAS baselines use (its ABI unchanged since CUDA 10: cuBLAS 12
// serves as well as 13).
using Handle = struct cublasContext*;
using Status = int;                // cublasStatus_t: 0 is CUBLAS_STATUS_SUCCESS
constexpr int kOpN = 0, kOpT = 1;  // cublasOperation_t
struct Cublas {
  Status (*create)(Handle*);
  Status (*set_stream)(Handle, void*);
  const char* (*status_string)(Status);
  Status (*sgemv)(Handle, int, int, int, const float*, const float*, int, const float*, int, const float*, float*, int);
  Status (*sgemm)(Handle, int, int, int, int, int, const float*, const float*, int, const float*, int, const float*,
                  float*, int);
} cublas;
Handle handle = nullptr;
std::string error;  // what the last failure returned

const char* fail(std::string why) {
  error = std::move(why);
  return error.c_str();
}

const char* check(Status status, const char* call) {
  return status == 0 ? nullptr : fail(std::string(call) + ": " + cublas.status_string(status));
}

// libcublas from $KFORGE_CUBLAS (a file), the loader's path, $CUDA_HOME, $CUDA_PATH or
// /usr/local/cuda (lib64), else CUDA 12's; the handle on `stream`.
const char* open_cublas(void* stream) {
  std::vector<std::string> names;
  if (const char* file = std::getenv("KFORGE_CUBLAS"); file && *file) names.push_back(file);
  names.push_back("libcublas.so.13");
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* root = std::getenv(var); root && *root)
      names.push_back(std::string(root) + "/lib64/libcublas.so.13");
  names.insert(names.end(), {"/usr/local/cuda/lib64/libcublas.so.13", "libcublas.so.12", "libcublas.so"});
  void* library = nullptr;
  std::string tried;
  for (const std::string& name : names) {
    if ((library = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL))) break;
    tried += (tried.empty() ? "" : ", ") + name;
  }
  if (!library) return fail("cuBLAS not found (tried " + tried + ")");
  const std::pair<void**, const char*> symbols[] = {
      {reinterpret_cast<void**>(&cublas.create), "cublasCreate_v2"},
      {reinterpret_cast<void**>(&cublas.set_stream), "cublasSetStream_v2"},
      {reinterpret_cast<void**>(&cublas.status_string), "cublasGetStatusString"},
      {reinterpret_cast<void**>(&cublas.sgemv), "cublasSgemv_v2"},
      {reinterpret_cast<void**>(&cublas.sgemm), "cublasSgemm_v2"}};
  for (const auto& [address, symbol] : symbols)
    if (!(*address = dlsym(library, symbol))) return fail(std::string("cuBLAS has no ") + symbol);
  if (const char* why = check(cublas.create(&handle), "cublasCreate")) return why;
  return check(cublas.set_stream(handle, stream), "cublasSetStream");
}

}  // namespace

extern "C" const char* kforge_baseline_open(void* stream) {
  return open_cublas(stream);
}

// Row-major C [M, N] = A [M, K] W^T, with W [N, K], is column-major C^T (N x M) = op_T(W: K x N) times
// A^T (K x M): every leading dimension is the row length of the row-major array.
extern "C" const char* gemm_flat_cublas(const float* A, const float* W, float* C, int M, int N, int K) {
  const float one = 1, zero = 0;
  return check(cublas.sgemm(handle, kOpT, kOpN, N, M, K, &one, W, K, A, K, &zero, C, N), "cublasSgemm");
}
