// A stand-in libcuda.so.1 for test_gpu_device_fake: the driver API calls kforge's cuda backend
// binds, each logged with its arguments (fake_driver.hpp), checking its handles and that a
// context is current as the real driver does, and able to fail on request. Its functions are
// defined under the names and types cuda.h declares, so a signature that drifts from the
// header does not compile. Built with FAKE_CUDA_NO_ELAPSED_V2 it is a driver older than 12.8,
// with cuEventElapsedTime only.
#include <cuda.h>

#include <cstring>

#include "fake_driver.hpp"

namespace {

using fake::Call;
using fake::Handle;

// Two devices, told apart by every attribute, so a query sent to the wrong one shows. Their
// handles are not their ordinals, so a backend passing the ordinal where cuDeviceGet's handle
// belongs asks for a device that does not exist.
struct Device {
  const char* name;
  std::size_t memory;
  int major, minor, sms, l2, clock, memory_clock, bus, warp;
};
const Device devices[] = {
    {"Fake H100", 80ull << 30, 9, 0, 132, 50 << 20, 1980000, 2619000, 5120, 32},
    {"Fake RTX 3090", 24ull << 30, 8, 6, 82, 6 << 20, 1695000, 9751000, 384, 32},
};
constexpr int device_count = 2;
constexpr int first_handle = 100;

const Device* device_of(CUdevice handle) {
  const int i = handle - first_handle;
  return i >= 0 && i < device_count ? &devices[i] : nullptr;
}

bool initialized = false;
// Each device's primary context: one per device, named by the device ("ctx100"), retained and
// released by count; a context released to zero is inactive until retained again.
Handle* primary[device_count] = {};
thread_local Handle* current = nullptr;

bool context_current() {
  return current && current->retains > 0;
}

struct ErrorText {
  CUresult rc;
  const char *name, *text;
};
#define FAKE_ERROR(rc, text) \
  { rc, #rc, text }
const ErrorText errors[] = {
    FAKE_ERROR(CUDA_SUCCESS, "no error"),
    FAKE_ERROR(CUDA_ERROR_INVALID_VALUE, "invalid argument"),
    FAKE_ERROR(CUDA_ERROR_OUT_OF_MEMORY, "out of memory"),
    FAKE_ERROR(CUDA_ERROR_NOT_INITIALIZED, "initialization error"),
    FAKE_ERROR(CUDA_ERROR_INVALID_DEVICE, "invalid device ordinal"),
    FAKE_ERROR(CUDA_ERROR_INVALID_IMAGE, "device kernel image is invalid"),
    FAKE_ERROR(CUDA_ERROR_INVALID_CONTEXT, "invalid device context"),
    FAKE_ERROR(CUDA_ERROR_INVALID_PTX, "a PTX JIT compilation failed"),
    FAKE_ERROR(CUDA_ERROR_INVALID_HANDLE, "invalid resource handle"),
    FAKE_ERROR(CUDA_ERROR_NOT_FOUND, "named symbol not found"),
    FAKE_ERROR(CUDA_ERROR_ILLEGAL_ADDRESS, "an illegal memory access was encountered"),
    FAKE_ERROR(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "too many resources requested for launch"),
    FAKE_ERROR(CUDA_ERROR_LAUNCH_FAILED, "unspecified launch failure"),
    FAKE_ERROR(CUDA_ERROR_NOT_SUPPORTED, "operation not supported"),
};
#undef FAKE_ERROR

const ErrorText* error_of(CUresult rc) {
  for (const auto& e : errors)
    if (e.rc == rc) return &e;
  return nullptr;
}

const char* attribute_name(CUdevice_attribute a) {
  switch (a) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
      return "COMPUTE_CAPABILITY_MAJOR";
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
      return "COMPUTE_CAPABILITY_MINOR";
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
      return "MULTIPROCESSOR_COUNT";
    case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE:
      return "L2_CACHE_SIZE";
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE:
      return "CLOCK_RATE";
    case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE:
      return "MEMORY_CLOCK_RATE";
    case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH:
      return "GLOBAL_MEMORY_BUS_WIDTH";
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE:
      return "WARP_SIZE";
    default:
      return nullptr;
  }
}

// What both elapsed-time entry points do, under their own names.
CUresult elapsed(const char* call, float* ms, CUevent start, CUevent end) {
  Call<CUresult> c(call, fmt::format("{}, {}", fake::name(start), fake::name(end)));
  Handle *a = fake::find(start, "event"), *b = fake::find(end, "event");
  if (!c.require(a && b && ms, CUDA_ERROR_INVALID_HANDLE) ||
      !c.require(a->recorded_ms >= 0 && b->recorded_ms >= 0, CUDA_ERROR_INVALID_HANDLE))
    return c.done();
  *ms = static_cast<float>(b->recorded_ms - a->recorded_ms);
  return c.done(fmt::format("{}", *ms));
}

}  // namespace

// cuda.h renames the versioned calls (cuMemAlloc -> cuMemAlloc_v2); the older elapsed-time
// name is spelled out here, as a driver exports both.
#undef cuEventElapsedTime

extern "C" {

CUresult cuInit(unsigned flags) {
  Call<CUresult> c("cuInit", fmt::format("{}", flags));
  initialized = c.rc == 0;
  return c.done();
}

CUresult cuDriverGetVersion(int* version) {
  Call<CUresult> c("cuDriverGetVersion", "");
  if (!c.require(version, CUDA_ERROR_INVALID_VALUE)) return c.done();
  *version = 13000;
  return c.done("13000");
}

CUresult cuDeviceGetCount(int* count) {
  Call<CUresult> c("cuDeviceGetCount", "");
  if (!c.require(initialized, CUDA_ERROR_NOT_INITIALIZED)) return c.done();
  *count = device_count;
  return c.done(fmt::format("{}", device_count));
}

CUresult cuDeviceGet(CUdevice* device, int ordinal) {
  Call<CUresult> c("cuDeviceGet", fmt::format("{}", ordinal));
  if (!c.require(initialized, CUDA_ERROR_NOT_INITIALIZED) ||
      !c.require(ordinal >= 0 && ordinal < device_count, CUDA_ERROR_INVALID_DEVICE))
    return c.done();
  *device = first_handle + ordinal;
  return c.done(fmt::format("{}", *device));
}

CUresult cuDeviceGetName(char* name, int length, CUdevice device) {
  Call<CUresult> c("cuDeviceGetName", fmt::format("{}, {}", length, device));
  if (!c.require(device_of(device), CUDA_ERROR_INVALID_DEVICE)) return c.done();
  std::snprintf(name, static_cast<std::size_t>(length), "%s", device_of(device)->name);
  return c.done(name);
}

CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice device) {
  Call<CUresult> c("cuDeviceTotalMem_v2", fmt::format("{}", device));
  if (!c.require(device_of(device), CUDA_ERROR_INVALID_DEVICE)) return c.done();
  *bytes = device_of(device)->memory;
  return c.done(fmt::format("{}", *bytes));
}

CUresult cuDeviceGetAttribute(int* value, CUdevice_attribute attribute, CUdevice device) {
  const char* what = attribute_name(attribute);
  Call<CUresult> c("cuDeviceGetAttribute", fmt::format("{}, {}", what ? what : std::to_string(attribute), device));
  const Device* d = device_of(device);
  if (!c.require(d, CUDA_ERROR_INVALID_DEVICE) || !c.require(what, CUDA_ERROR_INVALID_VALUE)) return c.done();
  switch (attribute) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
      *value = d->major;
      break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
      *value = d->minor;
      break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
      *value = d->sms;
      break;
    case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE:
      *value = d->l2;
      break;
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE:
      *value = d->clock;
      break;
    case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE:
      *value = d->memory_clock;
      break;
    case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH:
      *value = d->bus;
      break;
    default:
      *value = d->warp;
      break;
  }
  return c.done(fmt::format("{}", *value));
}

// Not logged: the backend describes errors as it reports them, and the tests read what it says.
// Like the real driver, an unknown code gets no text and CUDA_ERROR_INVALID_VALUE.
CUresult cuGetErrorString(CUresult rc, const char** text) {
  const ErrorText* e = error_of(rc);
  *text = e ? e->text : nullptr;
  return e ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
CUresult cuGetErrorName(CUresult rc, const char** name) {
  const ErrorText* e = error_of(rc);
  *name = e ? e->name : nullptr;
  return e ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext* context, CUdevice device) {
  Call<CUresult> c("cuDevicePrimaryCtxRetain", fmt::format("{}", device));
  if (!c.require(device_of(device), CUDA_ERROR_INVALID_DEVICE)) return c.done();
  Handle*& p = primary[device - first_handle];
  if (!p) {
    p = fake::make<Handle*>("context");
    p->name = fmt::format("ctx{}", device);
    p->device = device;
  }
  ++p->retains;
  *context = reinterpret_cast<CUcontext>(p);
  return c.done(p->name);
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice device) {
  Call<CUresult> c("cuDevicePrimaryCtxRelease_v2", fmt::format("{}", device));
  if (!c.require(device_of(device), CUDA_ERROR_INVALID_DEVICE)) return c.done();
  Handle* p = primary[device - first_handle];
  if (!c.require(p && p->retains > 0, CUDA_ERROR_INVALID_CONTEXT)) return c.done();
  --p->retains;
  return c.done();
}

CUresult cuCtxSetCurrent(CUcontext context) {
  Call<CUresult> c("cuCtxSetCurrent", fake::name(context));
  Handle* h = fake::find(context, "context");
  if (!c.require(!context || (h && h->retains > 0), CUDA_ERROR_INVALID_CONTEXT)) return c.done();
  current = h;
  return c.done();
}

CUresult cuCtxResetPersistingL2Cache() {
  Call<CUresult> c("cuCtxResetPersistingL2Cache", "");
  c.require(context_current(), CUDA_ERROR_INVALID_CONTEXT);
  return c.done();
}

CUresult cuStreamCreate(CUstream* stream, unsigned flags) {
  Call<CUresult> c("cuStreamCreate", fmt::format("{}", flags));
  if (!c.require(context_current(), CUDA_ERROR_INVALID_CONTEXT)) return c.done();
  *stream = fake::make<CUstream>("stream");
  return c.done(fake::name(*stream));
}

CUresult cuStreamDestroy_v2(CUstream stream) {
  Call<CUresult> c("cuStreamDestroy_v2", fake::name(stream));
  Handle* h = fake::find(stream, "stream");
  if (!c.require(h, CUDA_ERROR_INVALID_HANDLE)) return c.done();
  fake::destroy(h);
  return c.done();
}

CUresult cuStreamSynchronize(CUstream stream) {
  Call<CUresult> c("cuStreamSynchronize", fake::name(stream));
  c.require(fake::find(stream, "stream"), CUDA_ERROR_INVALID_HANDLE);
  return c.done();
}

CUresult cuMemAlloc_v2(CUdeviceptr* ptr, size_t bytes) {
  Call<CUresult> c("cuMemAlloc_v2", fmt::format("{}", bytes));
  if (!c.require(context_current(), CUDA_ERROR_INVALID_CONTEXT) || !c.require(bytes > 0, CUDA_ERROR_INVALID_VALUE))
    return c.done();
  *ptr = fake::allocate(bytes);
  return c.done(fake::name(*ptr));
}

CUresult cuMemFree_v2(CUdeviceptr ptr) {
  Call<CUresult> c("cuMemFree_v2", fake::name(ptr));
  if (c.require(context_current(), CUDA_ERROR_INVALID_CONTEXT)) c.require(fake::release(ptr), CUDA_ERROR_INVALID_VALUE);
  return c.done();
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t bytes, CUstream stream) {
  Call<CUresult> c("cuMemcpyHtoDAsync_v2",
                   fmt::format("{}, {}, {}, {}", fake::name(dst), fake::name(src), bytes, fake::name(stream)));
  if (!c.require(context_current(), CUDA_ERROR_INVALID_CONTEXT) ||
      !c.require(fake::find(stream, "stream"), CUDA_ERROR_INVALID_HANDLE) ||
      !c.require(fake::allocation_of(dst, bytes) != fake::memory.end() && src, CUDA_ERROR_INVALID_VALUE))
    return c.done();
  std::memcpy(reinterpret_cast<void*>(dst), src, bytes);
  return c.done();
}

CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t bytes, CUstream stream) {
  Call<CUresult> c("cuMemcpyDtoHAsync_v2",
                   fmt::format("{}, {}, {}, {}", fake::name(dst), fake::name(src), bytes, fake::name(stream)));
  if (!c.require(context_current(), CUDA_ERROR_INVALID_CONTEXT) ||
      !c.require(fake::find(stream, "stream"), CUDA_ERROR_INVALID_HANDLE) ||
      !c.require(fake::allocation_of(src, bytes) != fake::memory.end() && dst, CUDA_ERROR_INVALID_VALUE))
    return c.done();
  std::memcpy(dst, reinterpret_cast<const void*>(src), bytes);
  return c.done();
}

CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t bytes, CUstream stream) {
  Call<CUresult> c("cuMemsetD8Async",
                   fmt::format("{}, {:#04x}, {}, {}", fake::name(dst), value, bytes, fake::name(stream)));
  if (!c.require(context_current(), CUDA_ERROR_INVALID_CONTEXT) ||
      !c.require(fake::find(stream, "stream"), CUDA_ERROR_INVALID_HANDLE) ||
      !c.require(fake::allocation_of(dst, bytes) != fake::memory.end(), CUDA_ERROR_INVALID_VALUE))
    return c.done();
  std::memset(reinterpret_cast<void*>(dst), value, bytes);
  return c.done();
}

// An image is text whose first line is "FAKE-IMAGE <kernel>...". A line "JIT-ERROR: <text>"
// makes the JIT fail with CUDA_ERROR_INVALID_PTX, writing <text> to the error log buffer the
// options give (as many bytes as they allow).
CUresult cuModuleLoadDataEx(CUmodule* module, const void* image, unsigned count, CUjit_option* options, void** values) {
  const char* text = static_cast<const char*>(image);
  std::string args = fmt::format("\"{}\"", fake::image_head(text));
  char* log = nullptr;
  std::size_t log_size = 0;
  for (unsigned i = 0; i < count; ++i) {
    if (options[i] == CU_JIT_ERROR_LOG_BUFFER) {
      log = static_cast<char*>(values[i]);
      args += ", ERROR_LOG_BUFFER";
    } else if (options[i] == CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES) {
      log_size = reinterpret_cast<std::uintptr_t>(values[i]);
      args += fmt::format(", ERROR_LOG_BUFFER_SIZE_BYTES={}", log_size);
    } else {
      args += fmt::format(", option {}", static_cast<int>(options[i]));
    }
  }
  Call<CUresult> c("cuModuleLoadDataEx", args);
  if (!c.require(context_current(), CUDA_ERROR_INVALID_CONTEXT) ||
      !c.require(std::strncmp(text, "FAKE-IMAGE", 10) == 0, CUDA_ERROR_INVALID_IMAGE))
    return c.done();
  if (const char* error = std::strstr(text, "JIT-ERROR: ")) {
    error += std::strlen("JIT-ERROR: ");
    const std::size_t length = std::strcspn(error, "\n");
    if (log && log_size) std::snprintf(log, log_size, "%.*s", static_cast<int>(length), error);
    c.require(false, CUDA_ERROR_INVALID_PTX);
    return c.done();
  }
  Handle* h = fake::make<Handle*>("module");
  h->image = text;
  *module = reinterpret_cast<CUmodule>(h);
  return c.done(h->name);
}

CUresult cuModuleUnload(CUmodule module) {
  Call<CUresult> c("cuModuleUnload", fake::name(module));
  Handle* h = fake::find(module, "module");
  if (!c.require(context_current(), CUDA_ERROR_INVALID_CONTEXT) || !c.require(h, CUDA_ERROR_INVALID_HANDLE))
    return c.done();
  fake::destroy(h);
  return c.done();
}

// Each call makes a new function handle, as the fake has no table of them; the backend is
// expected to look a kernel up once.
CUresult cuModuleGetFunction(CUfunction* function, CUmodule module, const char* name) {
  Call<CUresult> c("cuModuleGetFunction", fmt::format("{}, {}", fake::name(module), name));
  Handle* m = fake::find(module, "module");
  if (!c.require(context_current(), CUDA_ERROR_INVALID_CONTEXT) || !c.require(m, CUDA_ERROR_INVALID_HANDLE) ||
      !c.require(fake::has_kernel(*m, name), CUDA_ERROR_NOT_FOUND))
    return c.done();
  Handle* f = fake::make<Handle*>("function");
  f->module = m;
  *function = reinterpret_cast<CUfunction>(f);
  return c.done(f->name);
}

CUresult cuFuncSetAttribute(CUfunction function, CUfunction_attribute attribute, int value) {
  const bool dynamic_shared = attribute == CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
  Call<CUresult> c("cuFuncSetAttribute",
                   fmt::format("{}, {}, {}", fake::name(function),
                               dynamic_shared ? "MAX_DYNAMIC_SHARED_SIZE_BYTES" : std::to_string(attribute), value));
  Handle* f = fake::find(function, "function");
  if (!c.require(f, CUDA_ERROR_INVALID_HANDLE) || !c.require(dynamic_shared, CUDA_ERROR_INVALID_VALUE)) return c.done();
  f->max_dynamic_shared = value;
  return c.done();
}

// Logs the first kernel argument as an int (the tests' kernels take one). As on a real GPU,
// more than 48 KiB of dynamic shared memory needs the function's opt-in first.
CUresult cuLaunchKernel(CUfunction function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                        unsigned bz, unsigned shared, CUstream stream, void** args, void** extra) {
  Call<CUresult> c("cuLaunchKernel",
                   fmt::format("{}, {}x{}x{}, {}x{}x{}, {}, {}, {}{}", fake::name(function), gx, gy, gz, bx, by, bz,
                               shared, fake::name(stream), args ? fmt::format("{}", *static_cast<int*>(args[0])) : "-",
                               extra ? ", extra" : ""));
  Handle* f = fake::find(function, "function");
  if (!c.require(context_current(), CUDA_ERROR_INVALID_CONTEXT) || !c.require(f, CUDA_ERROR_INVALID_HANDLE) ||
      !c.require(fake::find(stream, "stream"), CUDA_ERROR_INVALID_HANDLE) ||
      !c.require(shared <= 48u << 10 || static_cast<int>(shared) <= f->max_dynamic_shared, CUDA_ERROR_INVALID_VALUE))
    return c.done();
  return c.done();
}

CUresult cuEventCreate(CUevent* event, unsigned flags) {
  Call<CUresult> c("cuEventCreate", fmt::format("{}", flags));
  if (!c.require(context_current(), CUDA_ERROR_INVALID_CONTEXT)) return c.done();
  *event = fake::make<CUevent>("event");
  return c.done(fake::name(*event));
}

CUresult cuEventDestroy_v2(CUevent event) {
  Call<CUresult> c("cuEventDestroy_v2", fake::name(event));
  Handle* h = fake::find(event, "event");
  if (!c.require(h, CUDA_ERROR_INVALID_HANDLE)) return c.done();
  fake::destroy(h);
  return c.done();
}

CUresult cuEventRecord(CUevent event, CUstream stream) {
  Call<CUresult> c("cuEventRecord", fmt::format("{}, {}", fake::name(event), fake::name(stream)));
  Handle* e = fake::find(event, "event");
  if (!c.require(e, CUDA_ERROR_INVALID_HANDLE) || !c.require(fake::find(stream, "stream"), CUDA_ERROR_INVALID_HANDLE))
    return c.done();
  e->recorded_ms = fake::clock_ms += fake::tick_ms;
  return c.done();
}

CUresult cuEventSynchronize(CUevent event) {
  Call<CUresult> c("cuEventSynchronize", fake::name(event));
  c.require(fake::find(event, "event"), CUDA_ERROR_INVALID_HANDLE);
  return c.done();
}

#ifndef FAKE_CUDA_NO_ELAPSED_V2
CUresult cuEventElapsedTime_v2(float* ms, CUevent start, CUevent end) {
  return elapsed("cuEventElapsedTime_v2", ms, start, end);
}
#endif
CUresult cuEventElapsedTime(float* ms, CUevent start, CUevent end) {
  return elapsed("cuEventElapsedTime", ms, start, end);
}

}  // extern "C"
