// The Device of the GPU backends, written once against GpuDriverApi (gpu_device.hpp): one stream
// per device, modules and events tied to the device that made them, every error naming the
// driver's error and what was being done, and a sticky error marking the device dead.
#include "compiler_bridge/gpu_device.hpp"

#include <algorithm>
#include <map>
#include <memory>

namespace kforge {
namespace {

// What a device's modules and events keep alive: CUDA's retained primary context (released with
// the last of them), or for HIP only the device's ordinal.
struct GpuContext {
  GpuContext(const GpuDriverApi& driver, int ordinal) : api(driver), device(ordinal) {}
  GpuContext(const GpuContext&) = delete;
  GpuContext& operator=(const GpuContext&) = delete;
  ~GpuContext() {
    if (context) api.context_release(device);
  }
  int make_current() const { return api.make_current(context, device); }

  const GpuDriverApi& api;
  int device;  // the driver's handle: CUDA's CUdevice, HIP's ordinal
  void* context = nullptr;
};

// Whether two devices are one for modules and events: the same context (a CUDA device opened
// twice retains its primary context twice, and each open is its own), else the same ordinal.
bool same_device(const GpuContext& a, const GpuContext& b) {
  return &a == &b || (!a.context && !b.context && a.device == b.device);
}

struct GpuModule final : Module {
  std::shared_ptr<GpuContext> context;
  void* module = nullptr;
  std::string name;  // the binary's file, for error messages
  struct Function {
    void* handle = nullptr;
    // What the kernel was last allowed (0: never set). Not assumed to be 48 KiB: the default is 48 KiB
    // minus the kernel's static shared memory, so any dynamic request is opted into explicitly.
    unsigned max_dynamic_shared = 0;
  };
  mutable std::map<std::string, Function, std::less<>> functions;  // looked up on first launch
  ~GpuModule() override {
    if (module && context->make_current() == 0) (void)context->api.module_unload(module);
  }
};

struct GpuEvent final : Event {
  std::shared_ptr<GpuContext> context;
  void* event = nullptr;
  ~GpuEvent() override {
    if (event && context->make_current() == 0) (void)context->api.event_destroy(event);
  }
};

class GpuDevice final : public Device {
 public:
  GpuDevice(DeviceInfo info, std::shared_ptr<GpuContext> context, void* stream)
      : info_(std::move(info)), context_(std::move(context)), api_(context_->api), stream_(stream) {}

  ~GpuDevice() override {
    if (dead_ || context_->make_current() != 0) return;
    (void)api_.stream_synchronize(stream_);
    if (flush_buffer_) (void)api_.memory_free(flush_buffer_);
    (void)api_.stream_destroy(stream_);
  }

  const DeviceInfo& info() const override { return info_; }

  Result<DevicePtr> alloc(std::size_t bytes) override {
    if (auto s = enter(); !s) return s.error();
    if (bytes == 0) return DevicePtr{0};
    DevicePtr ptr = 0;
    if (auto s = check(api_.memory_alloc(&ptr, bytes),
                       [&] { return fmt::format("{} of {} bytes", api_.memory_alloc.name, bytes); });
        !s)
      return s.error();
    return ptr;
  }

  void free(DevicePtr ptr) override {
    if (ptr == 0 || !enter()) return;
    (void)check(api_.memory_free(ptr), [&] { return std::string(api_.memory_free.name); });
  }

  Status copy_in(DevicePtr dst, const void* src, std::size_t bytes) override {
    if (auto s = enter(); !s || bytes == 0) return s;
    if (auto s = check(api_.copy_in(dst, src, bytes, stream_),
                       [&] { return fmt::format("{} of {} bytes to {:#x}", api_.copy_in.name, bytes, dst); });
        !s)
      return s;
    return synchronize();
  }

  Status copy_out(void* dst, DevicePtr src, std::size_t bytes) override {
    if (auto s = enter(); !s || bytes == 0) return s;
    if (auto s = check(api_.copy_out(dst, src, bytes, stream_),
                       [&] { return fmt::format("{} of {} bytes from {:#x}", api_.copy_out.name, bytes, src); });
        !s)
      return s;
    return synchronize();
  }

  Status fill(DevicePtr dst, std::uint8_t byte, std::size_t bytes) override {
    if (auto s = enter(); !s || bytes == 0) return s;
    return check(api_.fill(dst, byte, bytes, stream_),
                 [&] { return fmt::format("{} of {} bytes at {:#x}", api_.fill.name, bytes, dst); });
  }

  Result<std::unique_ptr<Module>> load(const Binary& binary) override {
    auto format = std::find_if(api_.formats.begin(), api_.formats.end(),
                               [&](const GpuDriverApi::ImageFormat& f) { return f.format == binary.format; });
    if (binary.backend != api_.vendor || format == api_.formats.end())
      return make_error(ErrorKind::invalid_input, "{}: cannot load a {} {} binary ({})", api_.vendor, binary.backend,
                        binary.format, binary.path);
    if (auto s = enter(); !s) return s.error();
    auto image = read_file(binary.path);  // PTX must end in a NUL, which std::string keeps after its data
    if (!image) return image.error();
    auto module = std::make_unique<GpuModule>();
    module->context = context_;
    module->name = binary.path;
    std::string log;
    const int rc = api_.module_load(&module->module, image->c_str(), log);
    if (auto s = check(rc,
                       [&] {
                         return fmt::format("{} of {} ({} for {}, this device is {}){}", api_.module_load.name,
                                            binary.path, format->described_as, binary.arch, info_.arch,
                                            log.empty() ? "" : "\n" + log);
                       });
        !s) {
      module->module = nullptr;
      return s.error();
    }
    return std::unique_ptr<Module>(std::move(module));
  }

  Status launch(const Module& module, const std::string& entry, const LaunchDims& dims, void** args) override {
    auto* loaded = dynamic_cast<const GpuModule*>(&module);
    if (!loaded || !same_device(*loaded->context, *context_))
      return make_error(ErrorKind::invalid_input, "{} device {}: launch of {}: the module was loaded by another device",
                        api_.vendor, info_.index, entry);
    if (auto s = enter(); !s) return s;
    auto found = loaded->functions.find(entry);
    if (found == loaded->functions.end()) {
      void* function = nullptr;
      if (auto s = check(api_.module_function(&function, loaded->module, entry.c_str()),
                         [&] { return fmt::format("{} '{}' in {}", api_.module_function.name, entry, loaded->name); });
          !s)
        return s;
      found = loaded->functions.emplace(entry, GpuModule::Function{function}).first;
    }
    GpuModule::Function& function = found->second;
    if (api_.max_dynamic_shared && dims.shared_bytes > function.max_dynamic_shared) {
      if (auto s = check(api_.max_dynamic_shared(function.handle, static_cast<int>(dims.shared_bytes)),
                         [&] {
                           return fmt::format("{}(MAX_DYNAMIC_SHARED_SIZE_BYTES = {}) for '{}'",
                                              api_.max_dynamic_shared.name, dims.shared_bytes, entry);
                         });
          !s)
        return s;
      function.max_dynamic_shared = dims.shared_bytes;
    }
    return check(api_.launch(function.handle, dims.grid[0], dims.grid[1], dims.grid[2], dims.block[0], dims.block[1],
                             dims.block[2], dims.shared_bytes, stream_, args, nullptr),
                 [&] {
                   return fmt::format("{} '{}' grid=({},{},{}) block=({},{},{}) smem={}", api_.launch.name, entry,
                                      dims.grid[0], dims.grid[1], dims.grid[2], dims.block[0], dims.block[1],
                                      dims.block[2], dims.shared_bytes);
                 });
  }

  Status synchronize() override {
    if (auto s = enter(); !s) return s;
    return check(api_.stream_synchronize(stream_), [&] { return std::string(api_.stream_synchronize.name); });
  }

  Result<std::unique_ptr<Event>> create_event() override {
    if (auto s = enter(); !s) return s.error();
    auto event = std::make_unique<GpuEvent>();
    event->context = context_;
    if (auto s = check(api_.event_create(&event->event), [&] { return std::string(api_.event_create.name); }); !s) {
      event->event = nullptr;
      return s.error();
    }
    return std::unique_ptr<Event>(std::move(event));
  }

  Status record(Event& event) override {
    auto* e = dynamic_cast<GpuEvent*>(&event);
    if (!e || !same_device(*e->context, *context_))
      return make_error(ErrorKind::invalid_input, "{} device {}: the event was created by another device", api_.vendor,
                        info_.index);
    if (auto s = enter(); !s) return s;
    return check(api_.event_record(e->event, stream_), [&] { return std::string(api_.event_record.name); });
  }

  Result<double> elapsed_ms(const Event& start, const Event& end) override {
    auto *a = dynamic_cast<const GpuEvent*>(&start), *b = dynamic_cast<const GpuEvent*>(&end);
    if (!a || !b || !same_device(*a->context, *context_) || !same_device(*b->context, *context_))
      return make_error(ErrorKind::invalid_input, "{} device {}: the events were created by another device",
                        api_.vendor, info_.index);
    if (auto s = enter(); !s) return s.error();
    if (auto s = check(api_.event_synchronize(b->event), [&] { return std::string(api_.event_synchronize.name); }); !s)
      return s.error();
    float ms = 0;
    if (auto s =
            check(api_.event_elapsed(&ms, a->event, b->event), [&] { return std::string(api_.event_elapsed.name); });
        !s)
      return s.error();
    return static_cast<double>(ms);
  }

  // Writes the buffer, then (CUDA) resets persisting L2 lines.
  Status flush_l2() override {
    if (auto s = enter(); !s) return s;
    if (!flush_buffer_) {
      flush_bytes_ = std::max<std::size_t>(2 * static_cast<std::size_t>(info_.l2_bytes), 8u << 20);
      if (auto s = check(
              api_.memory_alloc(&flush_buffer_, flush_bytes_),
              [&] { return fmt::format("{} of the {}-byte L2 flush buffer", api_.memory_alloc.name, flush_bytes_); });
          !s)
        return s;
    }
    flush_byte_ ^= 0xff;  // a different value each time, so no write is ever redundant
    if (auto s = check(api_.fill(flush_buffer_, flush_byte_, flush_bytes_, stream_),
                       [&] { return fmt::format("{} of the {}-byte L2 flush buffer", api_.fill.name, flush_bytes_); });
        !s || !api_.reset_persisting_l2)
      return s;
    return check(api_.reset_persisting_l2(), [&] { return std::string(api_.reset_persisting_l2.name); });
  }

  bool dead() const override { return dead_; }
  void* native_stream() const override { return stream_; }

 private:
  // Makes the device current on the calling thread (the evaluator may call from any thread),
  // unless a sticky error killed it.
  Status enter() {
    if (dead_)
      return make_error(ErrorKind::internal, "{} device {}: the {} is dead since {}; restart the process", api_.vendor,
                        info_.index, api_.holder, dead_reason_);
    return check(context_->make_current(), [&] { return std::string(api_.make_current.name); });
  }

  // `what` (a function, so the message costs nothing on success) says what was being done.
  template <class What>
  Status check(int rc, const What& what) {
    if (rc == 0) return {};
    std::string message = fmt::format("{} device {}: {}: {}", api_.vendor, info_.index, what(), api_.describe(rc));
    if (api_.is_sticky(rc)) {
      dead_ = true;
      dead_reason_ = api_.describe(rc);
      message += fmt::format("; the {} is dead: restart the process", api_.holder);
    }
    return Error{ErrorKind::internal, message};
  }

  DeviceInfo info_;
  std::shared_ptr<GpuContext> context_;
  const GpuDriverApi& api_;
  void* stream_ = nullptr;
  DevicePtr flush_buffer_ = 0;
  std::size_t flush_bytes_ = 0;
  std::uint8_t flush_byte_ = 0;
  bool dead_ = false;
  std::string dead_reason_;
};

// Device `info` opened: (CUDA) its handle and primary context retained, made current, a stream.
Result<std::unique_ptr<Device>> open_gpu_device(const GpuDriverApi& api, const DeviceInfo& info) {
  const int index = info.index;
  auto context = std::make_shared<GpuContext>(api, index);
  auto fail = [&](std::string_view what, int rc) {
    return make_error(ErrorKind::internal, "{} device {}: {}: {}", api.vendor, index, what, api.describe(rc));
  };
  if (api.device_get)
    if (int rc = api.device_get(&context->device, index); rc != 0) return fail(api.device_get.name, rc);
  if (api.context_retain)
    if (int rc = api.context_retain(&context->context, context->device); rc != 0) {
      context->context = nullptr;
      return fail(api.context_retain.name, rc);
    }
  if (int rc = context->make_current(); rc != 0) return fail(api.make_current.name, rc);
  void* stream = nullptr;
  if (int rc = api.stream_create(&stream, gpu_stream_non_blocking); rc != 0) return fail(api.stream_create.name, rc);
  return std::unique_ptr<Device>(std::make_unique<GpuDevice>(info, context, stream));
}

}  // namespace

std::vector<DeviceInfo> list_gpu_devices(const GpuDriverApi& api, int count) {
  std::vector<DeviceInfo> out;
  for (int i = 0; i < count; ++i) {
    int device = i;
    if (api.device_get) (void)api.device_get(&device, i);
    char name[256] = {};
    (void)api.device_name(name, sizeof name, device);
    std::size_t memory = 0;
    (void)api.total_memory(&memory, device);
    auto get = [&](int attribute) {
      int value = 0;
      (void)api.device_attribute(&value, attribute, device);
      return value;
    };
    DeviceInfo info;
    info.backend = api.vendor;
    info.index = i;
    info.name = name;
    info.arch = api.arch_of(device);
    info.compute_units = get(api.attributes.compute_units);
    info.memory_bytes = static_cast<std::int64_t>(memory);
    info.l2_bytes = get(api.attributes.l2_bytes);
    info.clock_khz = get(api.attributes.clock_khz);
    info.memory_clock_khz = get(api.attributes.memory_clock_khz);
    info.memory_bus_bits = get(api.attributes.memory_bus_bits);
    info.warp_size = get(api.attributes.warp_size);
    out.push_back(info);
  }
  return out;
}

Result<std::unique_ptr<Device>> GpuBackend::open_device(int index) const {
  auto found = devices();
  if (!found) return make_error(ErrorKind::io, "{}: unavailable: {}", name(), found.error().message);
  if (index < 0 || index >= static_cast<int>(found->size()))
    return make_error(ErrorKind::invalid_input, "{}: no device {} (this machine has {})", name(), index, found->size());
  return open_gpu_device(driver_api(), (*found)[static_cast<std::size_t>(index)]);
}

}  // namespace kforge
