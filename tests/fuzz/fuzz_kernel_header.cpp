// parse_candidate on a kernel source: its `// @kforge entry/about/param/launch/workspace:` lines.
// A kernel that parses has its launches and workspace evaluated as a GPU target does, at its
// params and at sizes of 1000 for every other symbol.
#include "compiler_bridge/compiler_bridge.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto candidate = kforge::parse_candidate(std::string(reinterpret_cast<const char*>(data), size), "fuzz.cu");
  if (!candidate) return 0;
  kforge::Bindings bindings = candidate->param_bindings();
  std::vector<const kforge::Expr*> exprs;
  for (const auto& launch : candidate->launches) {
    for (const auto* dims : {&launch.grid, &launch.block})
      for (const auto& e : *dims) exprs.push_back(&e);
    if (launch.shared_bytes) exprs.push_back(&*launch.shared_bytes);
  }
  if (candidate->workspace_bytes) exprs.push_back(&*candidate->workspace_bytes);
  for (const auto* e : exprs)
    for (const auto& symbol : e->symbols()) bindings.emplace(symbol, 1000);
  for (const auto& launch : candidate->launches) (void)kforge::evaluate_launch(launch, bindings);
  if (candidate->workspace_bytes) (void)candidate->workspace_bytes->eval(bindings);
  return 0;
}
