// A stand-in libamdhip64.so.6 for test_gpu_device_fake: the HIP runtime calls kforge's hip
// backend binds, each logged with its arguments (fake_driver.hpp), checking its handles and the
// direction of every copy, and able to fail on request. Its functions are defined under the
// names and types hip_runtime_api.h declares, and it answers attribute queries by the header's
// enum names, whose values differ between ROCm releases.
#include <hip/hip_runtime_api.h>

#include <cstring>

#include "fake_driver.hpp"

namespace {

using fake::Call;
using fake::Handle;

// Two devices, told apart by every attribute, so a query sent to the wrong one shows. Device 0's
// L2 is small enough that the backend's 8 MiB floor for the flush buffer shows.
struct Device {
  const char* name;
  std::size_t memory;
  int cus, l2, clock, memory_clock, bus, warp;
};
const Device devices[] = {
    {"Fake MI300X", 192ull << 30, 304, 3 << 20, 2100000, 1300000, 8192, 64},
    {"Fake MI210", 64ull << 30, 104, 8 << 20, 1700000, 1600000, 4096, 64},
};
constexpr int device_count = 2;

const Device* device_of(int ordinal) {
  return ordinal >= 0 && ordinal < device_count ? &devices[ordinal] : nullptr;
}

bool initialized = false;
thread_local int current = 0;  // the calling thread's device, 0 until set

struct ErrorText {
  hipError_t rc;
  const char *name, *text;
};
#define FAKE_ERROR(rc, text) \
  { rc, #rc, text }
const ErrorText errors[] = {
    FAKE_ERROR(hipSuccess, "no error"),
    FAKE_ERROR(hipErrorInvalidValue, "invalid argument"),
    FAKE_ERROR(hipErrorOutOfMemory, "out of memory"),
    FAKE_ERROR(hipErrorNotInitialized, "initialization error"),
    FAKE_ERROR(hipErrorNoDevice, "no ROCm-capable device is detected"),
    FAKE_ERROR(hipErrorInvalidDevice, "invalid device ordinal"),
    FAKE_ERROR(hipErrorInvalidImage, "device kernel image is invalid"),
    FAKE_ERROR(hipErrorInvalidHandle, "invalid resource handle"),
    FAKE_ERROR(hipErrorNotFound, "named symbol not found"),
    FAKE_ERROR(hipErrorIllegalAddress, "an illegal memory access was encountered"),
    FAKE_ERROR(hipErrorLaunchOutOfResources, "too many resources requested for launch"),
    FAKE_ERROR(hipErrorLaunchFailure, "unspecified launch failure"),
};
#undef FAKE_ERROR

const ErrorText* error_of(hipError_t rc) {
  for (const auto& e : errors)
    if (e.rc == rc) return &e;
  return nullptr;
}

bool in_device_memory(const void* p, std::size_t bytes) {
  return fake::allocation_of(reinterpret_cast<std::uint64_t>(p), bytes) != fake::memory.end();
}

}  // namespace

extern "C" {

hipError_t hipInit(unsigned flags) {
  Call<hipError_t> c("hipInit", fmt::format("{}", flags));
  initialized = initialized || c.rc == 0;
  return c.done();
}

hipError_t hipGetDeviceCount(int* count) {
  Call<hipError_t> c("hipGetDeviceCount", "");
  if (!c.require(initialized, hipErrorNotInitialized)) return c.done();
  *count = device_count;
  return c.done(fmt::format("{}", device_count));
}

hipError_t hipDeviceGetName(char* name, int length, hipDevice_t device) {
  Call<hipError_t> c("hipDeviceGetName", fmt::format("{}, {}", length, device));
  if (!c.require(device_of(device), hipErrorInvalidDevice)) return c.done();
  std::snprintf(name, static_cast<std::size_t>(length), "%s", device_of(device)->name);
  return c.done(name);
}

hipError_t hipDeviceTotalMem(size_t* bytes, hipDevice_t device) {
  Call<hipError_t> c("hipDeviceTotalMem", fmt::format("{}", device));
  if (!c.require(device_of(device), hipErrorInvalidDevice)) return c.done();
  *bytes = device_of(device)->memory;
  return c.done(fmt::format("{}", *bytes));
}

hipError_t hipDeviceGetAttribute(int* value, hipDeviceAttribute_t attribute, int device) {
  const char* what = nullptr;
  const Device* d = device_of(device);
  int answer = 0;
  switch (attribute) {
    case hipDeviceAttributeMultiprocessorCount:
      what = "MultiprocessorCount", answer = d ? d->cus : 0;
      break;
    case hipDeviceAttributeL2CacheSize:
      what = "L2CacheSize", answer = d ? d->l2 : 0;
      break;
    case hipDeviceAttributeClockRate:
      what = "ClockRate", answer = d ? d->clock : 0;
      break;
    case hipDeviceAttributeMemoryClockRate:
      what = "MemoryClockRate", answer = d ? d->memory_clock : 0;
      break;
    case hipDeviceAttributeMemoryBusWidth:
      what = "MemoryBusWidth", answer = d ? d->bus : 0;
      break;
    case hipDeviceAttributeWarpSize:
      what = "WarpSize", answer = d ? d->warp : 0;
      break;
    default:
      break;
  }
  Call<hipError_t> c("hipDeviceGetAttribute",
                     fmt::format("{}, {}", what ? what : std::to_string(static_cast<int>(attribute)), device));
  if (!c.require(d, hipErrorInvalidDevice) || !c.require(what, hipErrorInvalidValue)) return c.done();
  *value = answer;
  return c.done(fmt::format("{}", answer));
}

// Not logged: the backend describes errors as it reports them, and the tests read what it says.
// An unknown code has no name or text, which the backend must survive.
const char* hipGetErrorName(hipError_t rc) {
  const ErrorText* e = error_of(rc);
  return e ? e->name : nullptr;
}
const char* hipGetErrorString(hipError_t rc) {
  const ErrorText* e = error_of(rc);
  return e ? e->text : nullptr;
}

hipError_t hipSetDevice(int device) {
  Call<hipError_t> c("hipSetDevice", fmt::format("{}", device));
  if (!c.require(device_of(device), hipErrorInvalidDevice)) return c.done();
  current = device;
  return c.done();
}

hipError_t hipStreamCreateWithFlags(hipStream_t* stream, unsigned flags) {
  Call<hipError_t> c("hipStreamCreateWithFlags", fmt::format("{}", flags));
  if (!c.require(stream, hipErrorInvalidValue)) return c.done();
  Handle* h = fake::make<Handle*>("stream");
  h->device = current;
  *stream = reinterpret_cast<hipStream_t>(h);
  return c.done(h->name);
}

hipError_t hipStreamDestroy(hipStream_t stream) {
  Call<hipError_t> c("hipStreamDestroy", fake::name(stream));
  Handle* h = fake::find(stream, "stream");
  if (!c.require(h, hipErrorInvalidHandle)) return c.done();
  fake::destroy(h);
  return c.done();
}

hipError_t hipStreamSynchronize(hipStream_t stream) {
  Call<hipError_t> c("hipStreamSynchronize", fake::name(stream));
  c.require(fake::find(stream, "stream"), hipErrorInvalidHandle);
  return c.done();
}

hipError_t hipMalloc(void** ptr, size_t bytes) {
  Call<hipError_t> c("hipMalloc", fmt::format("{}", bytes));
  if (!c.require(ptr && bytes > 0, hipErrorInvalidValue)) return c.done();
  *ptr = reinterpret_cast<void*>(fake::allocate(bytes));
  return c.done(fake::name(*ptr));
}

hipError_t hipFree(void* ptr) {
  Call<hipError_t> c("hipFree", fake::name(ptr));
  c.require(fake::release(reinterpret_cast<std::uint64_t>(ptr)), hipErrorInvalidValue);
  return c.done();
}

// Only the two directions the backend uses; each checks its source and destination are where
// the direction says, so a swapped copy fails instead of passing unnoticed.
hipError_t hipMemcpyAsync(void* dst, const void* src, size_t bytes, hipMemcpyKind kind, hipStream_t stream) {
  const char* direction = kind == hipMemcpyHostToDevice   ? "HostToDevice"
                          : kind == hipMemcpyDeviceToHost ? "DeviceToHost"
                                                          : nullptr;
  Call<hipError_t> c("hipMemcpyAsync",
                     fmt::format("{}, {}, {}, {}, {}", fake::name(dst), fake::name(src), bytes,
                                 direction ? direction : std::to_string(static_cast<int>(kind)), fake::name(stream)));
  const bool to_device = kind == hipMemcpyHostToDevice;
  if (!c.require(direction, hipErrorInvalidValue) || !c.require(fake::find(stream, "stream"), hipErrorInvalidHandle) ||
      !c.require(
          dst && src && in_device_memory(to_device ? dst : src, bytes) && !in_device_memory(to_device ? src : dst, 1),
          hipErrorInvalidValue))
    return c.done();
  std::memcpy(dst, src, bytes);
  return c.done();
}

hipError_t hipMemsetAsync(void* dst, int value, size_t bytes, hipStream_t stream) {
  Call<hipError_t> c("hipMemsetAsync",
                     fmt::format("{}, {:#04x}, {}, {}", fake::name(dst), value, bytes, fake::name(stream)));
  if (!c.require(fake::find(stream, "stream"), hipErrorInvalidHandle) ||
      !c.require(in_device_memory(dst, bytes), hipErrorInvalidValue))
    return c.done();
  std::memset(dst, value, bytes);
  return c.done();
}

// An image is text whose first line is "FAKE-IMAGE <kernel>..."; anything else is invalid.
hipError_t hipModuleLoadData(hipModule_t* module, const void* image) {
  const char* text = static_cast<const char*>(image);
  Call<hipError_t> c("hipModuleLoadData", fmt::format("\"{}\"", fake::image_head(text)));
  if (!c.require(std::strncmp(text, "FAKE-IMAGE", 10) == 0, hipErrorInvalidImage)) return c.done();
  Handle* h = fake::make<Handle*>("module");
  h->image = text;
  h->device = current;
  *module = reinterpret_cast<hipModule_t>(h);
  return c.done(h->name);
}

hipError_t hipModuleUnload(hipModule_t module) {
  Call<hipError_t> c("hipModuleUnload", fake::name(module));
  Handle* h = fake::find(module, "module");
  if (!c.require(h, hipErrorInvalidHandle)) return c.done();
  fake::destroy(h);
  return c.done();
}

// Each call makes a new function handle; the backend is expected to look a kernel up once.
hipError_t hipModuleGetFunction(hipFunction_t* function, hipModule_t module, const char* name) {
  Call<hipError_t> c("hipModuleGetFunction", fmt::format("{}, {}", fake::name(module), name));
  Handle* m = fake::find(module, "module");
  if (!c.require(m, hipErrorInvalidHandle) || !c.require(fake::has_kernel(*m, name), hipErrorNotFound)) return c.done();
  Handle* f = fake::make<Handle*>("function");
  f->module = m;
  *function = reinterpret_cast<hipFunction_t>(f);
  return c.done(f->name);
}

// Logs the first kernel argument as an int (the tests' kernels take one).
hipError_t hipModuleLaunchKernel(hipFunction_t function, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                 unsigned by, unsigned bz, unsigned shared, hipStream_t stream, void** args,
                                 void** extra) {
  Call<hipError_t> c("hipModuleLaunchKernel",
                     fmt::format("{}, {}x{}x{}, {}x{}x{}, {}, {}, {}{}", fake::name(function), gx, gy, gz, bx, by, bz,
                                 shared, fake::name(stream),
                                 args ? fmt::format("{}", *static_cast<int*>(args[0])) : "-", extra ? ", extra" : ""));
  c.require(fake::find(function, "function") && fake::find(stream, "stream"), hipErrorInvalidHandle);
  return c.done();
}

hipError_t hipEventCreate(hipEvent_t* event) {
  Call<hipError_t> c("hipEventCreate", "");
  if (!c.require(event, hipErrorInvalidValue)) return c.done();
  *event = fake::make<hipEvent_t>("event");
  return c.done(fake::name(*event));
}

hipError_t hipEventDestroy(hipEvent_t event) {
  Call<hipError_t> c("hipEventDestroy", fake::name(event));
  Handle* h = fake::find(event, "event");
  if (!c.require(h, hipErrorInvalidHandle)) return c.done();
  fake::destroy(h);
  return c.done();
}

hipError_t hipEventRecord(hipEvent_t event, hipStream_t stream) {
  Call<hipError_t> c("hipEventRecord", fmt::format("{}, {}", fake::name(event), fake::name(stream)));
  Handle* e = fake::find(event, "event");
  if (!c.require(e && fake::find(stream, "stream"), hipErrorInvalidHandle)) return c.done();
  e->recorded_ms = fake::clock_ms += fake::tick_ms;
  return c.done();
}

hipError_t hipEventSynchronize(hipEvent_t event) {
  Call<hipError_t> c("hipEventSynchronize", fake::name(event));
  c.require(fake::find(event, "event"), hipErrorInvalidHandle);
  return c.done();
}

hipError_t hipEventElapsedTime(float* ms, hipEvent_t start, hipEvent_t end) {
  Call<hipError_t> c("hipEventElapsedTime", fmt::format("{}, {}", fake::name(start), fake::name(end)));
  Handle *a = fake::find(start, "event"), *b = fake::find(end, "event");
  if (!c.require(a && b && ms, hipErrorInvalidHandle) ||
      !c.require(a->recorded_ms >= 0 && b->recorded_ms >= 0, hipErrorInvalidHandle))
    return c.done();
  *ms = static_cast<float>(b->recorded_ms - a->recorded_ms);
  return c.done(fmt::format("{}", *ms));
}

}  // extern "C"
