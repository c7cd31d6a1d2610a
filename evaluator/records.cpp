// An evaluation as the kernel library keeps it: the kernel's record and the evaluation's, made
// here so that `kforge eval` and the search store the same thing the same way.
#include "evaluator/evaluator.hpp"

namespace kforge {

KernelRecord kernel_record(const Task& task, const std::string& backend, const Candidate& candidate,
                           const std::string& origin, const std::string& run_id, const std::string& operator_name,
                           const std::string& parent_key) {
  KernelRecord k;
  k.params_json = nlohmann::json(candidate.param_bindings()).dump();
  k.key = kernel_key(task.id(), backend, k.params_json, candidate.source);
  k.task = task.id();
  k.backend = backend;
  k.entry = candidate.entry;
  k.source = candidate.source;
  k.origin = origin;
  k.operator_name = operator_name;
  k.parent_key = parent_key;
  k.run_id = run_id;
  return k;
}

EvaluationRecord evaluation_record(const Task& task, const std::string& device, const EvalResult& r,
                                   const std::string& run_id) {
  EvaluationRecord e;
  e.device = r.device.empty() ? device : r.device;  // a pool's worker says its own
  e.worker = r.worker;
  e.env.kforge_version = KFORGE_VERSION;
  e.run_id = run_id;
  e.verified = r.verified;
  e.status = to_string(r.status);
  e.message = r.message;
  e.log = r.log;
  e.output = r.output;
  // Shapes become problems: the first tensor's dtype, and M (tokens) as the dim that varies at run
  // time where the task has one.
  e.dtype = problem_dtype(task);
  e.dynamic_dim = problem_dynamic_dim(task);
  e.atol = task.atol;
  e.rtol = task.rtol;
  e.seed = r.seed;
  e.baseline = r.baseline;
  e.speedup = r.speedup;
  e.device_gbps = r.roof_gbps, e.device_gflops = r.roof_gflops;
  e.registers = r.usage.registers, e.spill_bytes = r.usage.spill_bytes, e.shared_bytes = r.usage.shared_bytes;
  e.code_bytes = r.code_bytes;
  for (const auto& s : r.shapes) {
    MeasurementRecord m;
    m.shape = shape_label(s.dims);
    m.bench = s.bench;
    m.correct = s.correct;
    m.max_abs_error = s.max_abs_error;
    m.max_rel_error = s.max_rel_error;
    if (s.timing) {
      const TimingStats& t = *s.timing;
      m.n = t.n;
      m.min_us = t.min_us, m.median_us = t.median_us, m.p20_us = t.p20_us, m.p80_us = t.p80_us;
      m.mean_us = t.mean_us, m.std_us = t.std_us, m.cv = t.cv, m.gbps = s.gbps, m.gflops = s.gflops;
      if (s.baseline_timing) m.baseline_median_us = s.baseline_timing->median_us, m.speedup = s.speedup;
      m.floor_us = s.floor_us, m.roofline_pct = s.roofline_pct;
    }
    e.measurements.push_back(std::move(m));
  }
  return e;
}

}  // namespace kforge
