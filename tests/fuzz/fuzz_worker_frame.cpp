// The bytes on the worker's socket: frames ("<length>\n<payload>") taken off a buffer as the
// worker and its parent do, each payload decoded as they decode it: a request's options (the
// worker), an evaluation result (the parent reading the worker's answer, and the worker reading
// what its sandboxed child, which ran the candidate, reported).
#include "evaluator/internal.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string buffer(reinterpret_cast<const char*>(data), size);
  for (;;) {
    const size_t before = buffer.size();
    auto frame = kforge::take_frame(buffer);
    if (!frame || !*frame) return 0;
    if (buffer.size() + (*frame)->size() >= before) std::abort();  // a frame always consumes its header
    auto message = nlohmann::json::parse(**frame, nullptr, false);
    if (message.is_discarded() || !message.is_object()) continue;
    if (message.contains("options")) {
      try {  // serve_request decodes the options inside its catch of JSON errors
        (void)kforge::eval_options_from_json(message["options"]);
      } catch (const nlohmann::json::exception&) {
      }
    }
    if (message.contains("result")) (void)kforge::eval_result_from_json(message["result"]);
  }
}
