// An LLM's reply as the agent reads it: the kernel in its fenced code blocks, its
// SEARCH/REPLACE blocks applied to a parent source, and the reply as a prompt template. An input
// with a NUL byte is "parent source NUL reply"; without one, the reply goes against a fixed parent.
#include "agent/agent.hpp"

namespace {
constexpr std::string_view kParent =
    "// @kforge entry: f\n"
    "extern \"C\" void f(float* y, int n) {\n"
    "  for (int i = 0; i < n; ++i) {\n"
    "    y[i] = 0.0f;\n"
    "  }\n"
    "}\n";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view reply(reinterpret_cast<const char*>(data), size), parent = kParent;
  if (const size_t nul = reply.find('\0'); nul != std::string_view::npos) {
    parent = reply.substr(0, nul);
    reply.remove_prefix(nul + 1);
  }
  (void)kforge::extract_kernel_source(reply);
  if (auto blocks = kforge::parse_diff_blocks(reply)) (void)kforge::apply_diff_blocks(parent, *blocks);
  (void)kforge::render_template(reply, {{"task", "llm/rmsnorm"}, {"backend", "cpu"}});
  return 0;
}
