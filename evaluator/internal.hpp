// Shared by the evaluator's own files, not part of its interface.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "evaluator/evaluator.hpp"

namespace kforge {

// The worker's side of one request: {"type": "ping"} or {"type": "eval", ...} (see harness.cpp).
nlohmann::json serve_request(const nlohmann::json& request);

nlohmann::json to_json(const EvalOptions& options);

// ---- the physics floor (physics.cpp) ----

// What this machine does at best: read bandwidth over hot buffers of a few sizes, FMA throughput.
struct MachineLimits {
  std::vector<std::pair<double, double>> read_bytes_per_s;  // (buffer bytes, bytes/s), sizes ascending
  double flops_per_s = 0;
  double read_rate(double bytes) const;  // the fastest rate a working set of `bytes` can be read at
};

// The probe, compiled like a candidate.
Result<Binary> compile_probe(const HostCompiler& compiler);
// Runs the probe (once per worker; the numbers are kept beside the probe's binary).
Result<MachineLimits> probe_limits(const std::string& probe_binary);
// Sets each timed shape's floor and % of roofline; a median under half the floor turns an ok
// result into rejected_cheat.
void apply_physics(const Task& task, const MachineLimits& limits, EvalResult& result);
EvalOptions eval_options_from_json(const nlohmann::json& j);

}  // namespace kforge
