// Shared by the evaluator's own files, not part of its interface.
#pragma once

#include <nlohmann/json.hpp>

#include "evaluator/evaluator.hpp"

namespace kforge {

// The worker's side of one request: {"type": "ping"} or {"type": "eval", ...} (see harness.cpp).
nlohmann::json serve_request(const nlohmann::json& request);

nlohmann::json to_json(const EvalOptions& options);
EvalOptions eval_options_from_json(const nlohmann::json& j);

}  // namespace kforge
