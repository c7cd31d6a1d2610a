// Internal to compiler_bridge: what the CUDA and HIP backends share. Their driver APIs (CUDA's
// driver API, HIP's runtime) do the same things in calls of mostly the same shapes, so one Device
// (and its Module and Event) is written once, in gpu_device.cpp, against GpuDriverApi: a table of
// those calls that cuda_backend.cpp and hip_backend.cpp fill from their libraries, binding a
// symbol directly where its signature passes its arguments as the table's does, else a small
// adapter. What stays in the vendor files is what differs: library and symbol names, the
// compiler, how an error is described and which errors are sticky, attribute ids and the arch,
// CUDA's primary context, JIT log, dynamic shared memory opt-in and persisting-L2 reset, HIP's
// current device by ordinal and its memcpy direction argument.
#pragma once

#include <string_view>
#include <type_traits>

#include "compiler_bridge/backends.hpp"

namespace kforge {

// One driver call in the table's neutral types: it returns the vendor's status (CUresult,
// hipError_t: int-sized enums, 0 on success) as an int; handles (CUstream, hipModule_t, ...) are
// void*; device addresses are DevicePtr.
template <class Signature>
struct DriverCall;
template <class... Args>
struct DriverCall<int(Args...)> {
  int (*fn)(Args...) = nullptr;
  std::string_view name;  // what error messages call it: "cuMemAlloc", "hipMalloc"
  int operator()(Args... args) const { return fn(args...); }
  explicit operator bool() const { return fn != nullptr; }
};

// The calls the shared Device makes, in neutral types. A call only one vendor has is null in the
// other's table.
struct GpuDriverApi {
  std::string_view vendor;  // "cuda", "hip": the backend's name, which starts every message
  std::string_view holder;  // what a sticky error kills: "context" (CUDA), "device" (HIP)
  // "CUDA_ERROR_OUT_OF_MEMORY: out of memory", "hipErrorOutOfMemory: out of memory"
  std::string (*describe)(int rc) = nullptr;
  // Whether `rc` leaves the device unusable for this process (dead()).
  bool (*is_sticky)(int rc) = nullptr;
  // How the formats the device loads are named in messages ("cubin", "code object").
  struct ImageFormat {
    std::string_view format, described_as;
  };
  std::vector<ImageFormat> formats;

  // The device's ordinal -> its handle (CUDA: cuDeviceGet; HIP: null, the ordinal is the handle).
  DriverCall<int(int*, int)> device_get;
  DriverCall<int(char*, int, int)> device_name;
  DriverCall<int(std::size_t*, int)> total_memory;
  DriverCall<int(int*, int, int)> device_attribute;
  // The attribute ids device_attribute takes, and the arch of a device handle.
  struct {
    int compute_units, l2_bytes, clock_khz, memory_clock_khz, memory_bus_bits, warp_size;
  } attributes = {};
  std::string (*arch_of)(int device) = nullptr;

  // CUDA's primary context, retained while anything of the device lives (HIP: null).
  DriverCall<int(void**, int)> context_retain;
  DriverCall<int(int)> context_release;
  // Makes the device current on the calling thread: its context (CUDA) or its ordinal (HIP).
  DriverCall<int(void* context, int device)> make_current;

  DriverCall<int(void**, unsigned)> stream_create;  // with gpu_stream_non_blocking
  DriverCall<int(void*)> stream_destroy, stream_synchronize;
  DriverCall<int(DevicePtr*, std::size_t)> memory_alloc;
  DriverCall<int(DevicePtr)> memory_free;
  DriverCall<int(DevicePtr, const void*, std::size_t, void*)> copy_in;  // async, on the stream
  DriverCall<int(void*, DevicePtr, std::size_t, void*)> copy_out;
  DriverCall<int(DevicePtr, int, std::size_t, void*)> fill;  // a byte, async
  // Loads an image; what the loader complained of lands in `log` (CUDA's JIT; HIP: none).
  DriverCall<int(void**, const char*, std::string&)> module_load;
  DriverCall<int(void*)> module_unload;
  DriverCall<int(void**, void*, const char*)> module_function;
  // Opts a function into this much dynamic shared memory (CUDA; HIP: null, none to opt into).
  DriverCall<int(void*, int)> max_dynamic_shared;
  DriverCall<int(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*, void**, void**)>
      launch;
  DriverCall<int(void**)> event_create;
  DriverCall<int(void*)> event_destroy;
  DriverCall<int(void*, void*)> event_record;  // event, stream
  DriverCall<int(void*)> event_synchronize;
  DriverCall<int(float*, void*, void*)> event_elapsed;
  // Drops persisting L2 lines after a flush (CUDA; HIP: null, no such control).
  DriverCall<int()> reset_persisting_l2;
};

// CU_STREAM_NON_BLOCKING and hipStreamNonBlocking, as each vendor file asserts: the harness's
// stream never waits on, or is waited on by, the legacy default stream.
inline constexpr unsigned gpu_stream_non_blocking = 1;

// Whether a vendor's function type passes its arguments (and returns its result) exactly as the
// table's neutral one does: each parameter the same type, or both integers, enums or pointers of
// one size (a pointer's target alike too, unless opaque: a handle's struct, void), or a narrower
// integer where the table passes an int (a byte to fill with).
namespace abi {
template <class T>
constexpr bool opaque = std::is_void_v<T> || std::is_class_v<T>;
template <class V, class N>
constexpr bool alike() {
  if constexpr (std::is_same_v<V, N>) {
    return true;
  } else if constexpr (std::is_pointer_v<V> && std::is_pointer_v<N>) {
    using TV = std::remove_cv_t<std::remove_pointer_t<V>>;
    using TN = std::remove_cv_t<std::remove_pointer_t<N>>;
    if constexpr (opaque<TV> || opaque<TN>)
      return opaque<TV> && opaque<TN>;
    else
      return alike<TV, TN>();
  } else {
    return std::is_scalar_v<V> && std::is_scalar_v<N> && !std::is_floating_point_v<V> && !std::is_floating_point_v<N> &&
           !std::is_member_pointer_v<V> && sizeof(V) == sizeof(N);
  }
}
template <class V, class N>
constexpr bool alike_argument() {
  if constexpr ((std::is_integral_v<V> || std::is_enum_v<V>)&&std::is_same_v<N, int>)
    return sizeof(V) <= sizeof(int);
  else
    return alike<V, N>();
}
template <class Vendor, class Neutral>
struct compatible : std::false_type {};
template <class RV, class... AV, class... AN>
requires(sizeof...(AV) == sizeof...(AN)) struct compatible<RV (*)(AV...), int (*)(AN...)>
    : std::bool_constant<alike<RV, int>() && (alike_argument<AV, AN>() && ...)> {
};
}  // namespace abi

// Points `call` at the first of `symbols` that `lib` has (a newer driver's versioned name, then
// the older one); `Vendor` is its type in the vendor's header (decltype(&cuMemAlloc)), checked at
// compile time against the table's. Messages name it as the first symbol without its "_v2".
template <class Vendor, class Neutral>
Status bind_call(const SharedLibrary& lib, DriverCall<Neutral>& call, const std::vector<const char*>& symbols) {
  static_assert(abi::compatible<Vendor, decltype(call.fn)>::value, "the vendor's call is not the table's shape");
  std::string_view name = symbols.front();
  if (name.ends_with("_v2")) name.remove_suffix(3);
  call.name = name;
  return bind_first(lib, call.fn, symbols);
}

// The devices 0 .. count-1 of a driver, described by its table.
std::vector<DeviceInfo> list_gpu_devices(const GpuDriverApi& api, int count);

// What the CUDA and HIP backends share: opening a device of devices() through the driver's table.
class GpuBackend : public Backend {
 public:
  using Backend::Backend;
  // "<name>: unavailable: <why devices() failed>", "<name>: no device 3 (this machine has 1)", or
  // the device with a non-blocking stream of its own.
  Result<std::unique_ptr<Device>> open_device(int index) const final;

 protected:
  // The loaded driver: asked only once devices() succeeded.
  virtual const GpuDriverApi& driver_api() const = 0;
};

}  // namespace kforge
