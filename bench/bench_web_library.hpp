// A generated kernel library for bench_web and test_web: one run of a task with thousands of
// evaluations, as a search would store them, written in one transaction.
#pragma once

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "kernels_db/kernels_db.hpp"

namespace kforge::bench {

inline const std::string kWebTask = "bench/scale", kWebDevice = "cpu:bench";

// A run of `n` evaluations of one task: each kernel a child of an earlier one, one in eight
// failing, every 16th re-verified (a second evaluation), and a saved population of four islands.
// Returns the run's id.
inline std::string build_web_library(const std::string& path, int n) {
  auto store = KernelStore::open(path).value();
  RunRecord run;
  run.id = new_run_id(), run.command = "bench", run.seed = "1";
  if (!store.record_run(run)) std::abort();
  std::vector<std::pair<KernelRecord, EvaluationRecord>> batch;
  std::vector<std::string> keys;
  nlohmann::json programs = nlohmann::json::array(), elites = nlohmann::json::array();
  for (int i = 0; i < n;) {
    KernelRecord k;
    k.task = kWebTask, k.backend = "cpu", k.entry = "scale_f32", k.params_json = "{}", k.run_id = run.id;
    k.source = fmt::format("// @kforge entry: scale_f32\n// variant {}\nextern \"C\" void scale_f32() {{}}\n", i);
    k.origin = fmt::format("param_mutation-{}", i), k.operator_name = i < 2 ? "seed" : "param_mutation";
    k.parent_key = i < 2 ? "" : keys[(i * 7919) % keys.size()];
    k.key = kernel_key(k.task, k.backend, k.params_json, k.source);
    keys.push_back(k.key);
    EvaluationRecord e;
    e.kernel_key = k.key, e.device = kWebDevice, e.run_id = run.id, e.seed = i, e.baseline = "cpu_naive.cpp";
    e.status = i % 8 == 5 ? "incorrect" : "ok";
    e.log = "warning: nothing to see\n";
    MeasurementRecord m;
    m.shape = "N=4096", m.bench = true, m.correct = e.status == "ok";
    if (m.correct) {
      m.n = 50, m.median_us = 10.0 / (1 + (i % 97) / 100.0), m.baseline_median_us = 10, m.speedup = 10 / m.median_us;
      m.gbps = 3.3 * m.speedup, m.gflops = 0.4 * m.speedup;
      e.speedup = m.speedup;
    }
    e.measurements = {m};
    programs.push_back({{"key", k.key}, {"fitness", e.speedup}, {"origin", k.origin}});
    if (e.status == "ok" && i % 5 == 0) elites.push_back({i % 8, (i / 8) % 8, i, -1});
    batch.push_back({k, e});
    ++i;
    if (i % 16 == 0) {
      e.verified = true, e.seed += 1000000;
      batch.push_back({k, e});
      ++i;
    }
  }
  nlohmann::json islands = nlohmann::json::array();
  for (int island = 0; island < 4; ++island) islands.push_back({{"members", nlohmann::json::array()}, {"elites", elites}});
  SearchStateRecord state{run.id, kWebTask,
                          nlohmann::json{{"population", {{"programs", programs}, {"islands", islands}}}}.dump()};
  if (!store.record_batch(batch, &state)) std::abort();
  return run.id;
}

}  // namespace kforge::bench
