// Tests' way to fill a kernel library: a source published as a verified, timed kernel.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "kernels_db/kernels_db.hpp"
#include "compiler_bridge/compiler_bridge.hpp"

namespace kforge {

// Publishes `source` in the library at `db` as a verified kernel of `op` on `device`, timed at 2x
// its baseline at each shape ("N=1024" and its median in us), for `dtype` (the op's first tensor's
// type). Returns the kernel's key.
inline std::string publish_kernel(const std::string& db, const std::string& op, const std::string& device,
                                  const std::string& source, const std::string& origin,
                                  const std::vector<std::pair<std::string, double>>& shapes,
                                  const std::string& dynamic_dim = "", const std::string& dtype = "f32") {
  auto candidate = parse_candidate(source, origin);
  EXPECT_TRUE(candidate.ok()) << candidate.error().message;
  KernelRecord k;
  k.task = op, k.backend = "cpu", k.entry = candidate ? candidate->entry : "", k.source = source;
  k.params_json = "{}", k.origin = origin, k.operator_name = "user";
  k.key = kernel_key(k.task, k.backend, k.params_json, k.source);
  EvaluationRecord e;
  e.kernel_key = k.key;
  e.device = device;
  e.env.kforge_version = "test";
  e.status = "ok";
  e.verified = true;
  e.dtype = dtype;  // the task's first tensor's (problem_dtype)
  e.dynamic_dim = dynamic_dim;
  e.speedup = 2;
  for (const auto& [shape, median] : shapes) {
    MeasurementRecord m;
    m.shape = shape, m.bench = true, m.correct = true, m.n = 20;
    m.min_us = m.median_us = m.p20_us = m.p80_us = m.mean_us = median;
    m.baseline_median_us = 2 * median, m.speedup = 2;
    e.measurements.push_back(m);
  }
  auto store = KernelStore::open(db);
  EXPECT_TRUE(store.ok());
  auto id = store->record(k, e);
  EXPECT_TRUE(id.ok()) << id.error().message;
  return k.key;
}

}  // namespace kforge
