#include <cmath>

#include "evaluator/internal.hpp"

namespace kforge {

using nlohmann::json;

namespace {
// JSON has no NaN or Inf, and a poisoned output reads as NaN: keep them as strings.
json number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}
double number_from(const json& j) {
  if (j.is_number()) return j.get<double>();
  const std::string s = j.get<std::string>();
  return s == "inf" ? INFINITY : s == "-inf" ? -INFINITY : NAN;
}

}  // namespace

json to_json(const EvalResult& result) {
  json shapes = json::array();
  for (const auto& s : result.shapes) {
    json mismatches = json::array();
    for (const auto& m : s.mismatches)
      mismatches.push_back(
          {{"tensor", m.tensor}, {"index", m.index}, {"got", number(m.got)}, {"want", number(m.want)}});
    json shape = {{"dims", s.dims},
                  {"kind", s.bench ? "bench" : "check"},
                  {"held_out", s.held_out},
                  {"correct", s.correct},
                  {"max_abs_error", s.max_abs_error},
                  {"max_rel_error", s.max_rel_error},
                  {"wrong_elements", s.wrong_elements},
                  {"mismatches", mismatches}};
    if (s.timing) {
      const TimingStats& t = *s.timing;
      shape["timing"] = {{"n", t.n},           {"min_us", t.min_us},   {"median_us", t.median_us}, {"p20_us", t.p20_us},
                         {"p80_us", t.p80_us}, {"mean_us", t.mean_us}, {"std_us", t.std_us},       {"cv", t.cv}};
      if (s.baseline_timing) {
        shape["baseline_median_us"] = s.baseline_timing->median_us;
        shape["speedup"] = s.speedup;
      }
      shape["gbps"] = s.gbps;
      shape["gflops"] = s.gflops;
      shape["floor_us"] = s.floor_us;
      shape["roofline_pct"] = s.roofline_pct;
    }
    shapes.push_back(shape);
  }
  return {{"status", to_string(result.status)},
          {"message", result.message},
          {"log", result.log},
          {"seed", result.seed},
          {"shapes", shapes},
          {"baseline", result.baseline},
          {"speedup", result.speedup},
          {"output", result.output},
          {"verified", result.verified},
          {"roof", {{"gbps", result.roof_gbps}, {"gflops", result.roof_gflops}}},
          {"resources",
           {{"registers", result.usage.registers},
            {"spill_bytes", result.usage.spill_bytes},
            {"shared_bytes", result.usage.shared_bytes},
            {"code_bytes", result.code_bytes}}}};
}

Result<EvalResult> eval_result_from_json(const json& j) {
  try {
    EvalResult r;
    const std::string status = j.at("status");
    for (auto s : {EvalStatus::ok, EvalStatus::compile_error, EvalStatus::incorrect, EvalStatus::crash,
                   EvalStatus::timeout, EvalStatus::runtime_error, EvalStatus::rejected_cheat})
      if (to_string(s) == status) r.status = s;
    r.message = j.at("message");
    r.log = j.at("log");
    r.seed = integer<std::uint64_t>(j.at("seed"));
    r.baseline = j.at("baseline");
    r.speedup = j.at("speedup");
    r.output = j.value("output", "");
    r.verified = j.value("verified", false);
    if (j.contains("roof")) r.roof_gbps = j["roof"].at("gbps"), r.roof_gflops = j["roof"].at("gflops");
    if (j.contains("resources")) {
      const json& u = j["resources"];
      r.usage.registers = integer<int>(u.at("registers"));
      r.usage.spill_bytes = integer<int>(u.at("spill_bytes"));
      r.usage.shared_bytes = integer<int>(u.at("shared_bytes"));
      r.code_bytes = integer<std::int64_t>(u.at("code_bytes"));
    }
    for (const auto& s : j.at("shapes")) {
      ShapeResult shape;
      for (const auto& [k, v] : s.at("dims").items()) shape.dims[k] = integer<std::int64_t>(v);
      shape.bench = s.at("kind") == "bench";
      shape.held_out = s.at("held_out");
      shape.correct = s.at("correct");
      shape.max_abs_error = s.at("max_abs_error");
      shape.max_rel_error = s.at("max_rel_error");
      shape.wrong_elements = integer<std::int64_t>(s.at("wrong_elements"));
      for (const auto& m : s.at("mismatches"))
        shape.mismatches.push_back({m.at("tensor"), integer<std::int64_t>(m.at("index")), number_from(m.at("got")),
                                    number_from(m.at("want"))});
      if (s.contains("timing")) {
        const json& t = s["timing"];
        shape.timing = TimingStats{integer<int>(t.at("n")), t.at("min_us"),  t.at("median_us"), t.at("p20_us"),
                                   t.at("p80_us"),          t.at("mean_us"), t.at("std_us"),    t.at("cv")};
        shape.gbps = s.at("gbps");
        if (s.contains("speedup")) {
          shape.baseline_timing = TimingStats{};
          shape.baseline_timing->median_us = s.at("baseline_median_us");
          shape.speedup = s.at("speedup");
        }
        shape.gflops = s.at("gflops");
        shape.floor_us = s.value("floor_us", 0.0);
        shape.roofline_pct = s.value("roofline_pct", 0.0);
      }
      r.shapes.push_back(std::move(shape));
    }
    return r;
  } catch (const json::exception& e) {
    return make_error(ErrorKind::internal, "malformed evaluation result: {}", e.what());
  }
}

json to_json(const EvalOptions& o) {
  return {{"timeout_s", o.timeout_s},
          {"seed", o.seed},
          {"time_bench_shapes", o.time_bench_shapes},
          {"warmup_s", o.warmup_s},
          {"min_repeats", o.min_repeats},
          {"max_repeats", o.max_repeats},
          {"max_time_per_shape_s", o.max_time_per_shape_s},
          {"target_relative_se", o.target_relative_se},
          {"memory_limit_bytes", o.memory_limit_bytes},
          {"sandbox", o.sandbox},
          {"flush_cache", o.flush_cache},
          {"check_baseline", o.check_baseline}};
}

// Missing fields keep their defaults: an older parent may talk to a newer worker.
EvalOptions eval_options_from_json(const json& j) {
  EvalOptions o;
  o.timeout_s = j.value("timeout_s", o.timeout_s);
  o.seed = integer_or(j, "seed", o.seed);
  o.time_bench_shapes = j.value("time_bench_shapes", o.time_bench_shapes);
  o.warmup_s = j.value("warmup_s", o.warmup_s);
  o.min_repeats = integer_or(j, "min_repeats", o.min_repeats);
  o.max_repeats = integer_or(j, "max_repeats", o.max_repeats);
  o.max_time_per_shape_s = j.value("max_time_per_shape_s", o.max_time_per_shape_s);
  o.target_relative_se = j.value("target_relative_se", o.target_relative_se);
  o.memory_limit_bytes = integer_or(j, "memory_limit_bytes", o.memory_limit_bytes);
  o.sandbox = j.value("sandbox", o.sandbox);
  o.flush_cache = j.value("flush_cache", o.flush_cache);
  o.check_baseline = j.value("check_baseline", o.check_baseline);
  return o;
}

}  // namespace kforge
