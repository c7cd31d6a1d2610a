// The offline search's efficiency against exhaustive enumeration and random search (issue 7), on a
// task whose CPU seeds have a param space small enough to enumerate, and the evaluator's
// throughput on it.
//
//   build/bench/bench_search [--task llm/gemm_flat] [--remeasure] [--passes 1] [--runs 200]
//
// 1. Exhaustive pass: every config of every CPU seed of the task (each `@kforge param` over its
//    choices, set in the source with with_param; a seed without params is one config) is
//    evaluated once by the real Evaluator, default EvalOptions, each compiled afresh (a temporary
//    compile cache). That gives a measured landscape, config -> speedup over the task's baseline
//    (0 unless ok), and the throughput figure: candidates evaluated per minute on this machine.
//    The landscape, with each config's code hash (what the search's dedup by code compares), is
//    kept in build/bench-search-landscape-<suite>_<task>.json and reused while the seeds,
//    task.toml and CPU are unchanged, unless --remeasure. --passes N adds passes until every
//    config has N samples (kept in the file as each is taken, so an interrupted pass resumes where
//    it stopped; a config's value is their median, 0 if any failed), for a landscape less shaped
//    by one unlucky measurement.
// 2. Simulation on that ONE measured landscape, no re-timing: strategies are compared on the same
//    numbers so that timing noise (this machine is shared) cannot decide the comparison. Only the
//    landscape itself carries the measurement noise (printed as the spread between passes).
//    (a) the offline search itself: Search::run with SearchOptions' defaults (4 islands, migration
//        every 25 evaluations, the patience rule, the dedup by source and by compiled code), its
//        evaluations answered by the landscape through CandidateEvaluator: a candidate's result
//        is its config's value, its code hash the one recorded for the config, and a new best's
//        re-verification gives the same number; its library is in memory;
//    (b) random search: the seeds, then distinct configs drawn uniformly without replacement.
//    Both get B = ceil(25% of the exhaustive count) evaluations, the seeds included, and run
//    with seeds 1..runs. Reported: mean best/optimum, the fraction of runs reaching >= 95% of the
//    optimum (and the optimum itself), the median evaluations needed to reach 95% when reached;
//    then the same without the 25% cap (up to the whole space) for the evaluations-to-95% curve.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <map>
#include <random>

#include "agent/search.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

// One point of the param space: a seed's source with one value per param.
struct Config {
  std::string origin;  // the seed's file name
  Candidate candidate;
  std::string hash;   // content_hash(normalized_source(source)): how the search dedups candidates
  bool seed = false;  // the seed file exactly as it is (its default values)
};

struct Point {
  std::string status;
  double speedup = 0;  // 0 unless ok
  std::string message;
  double seconds = 0;
};

std::string params_label(const Candidate& c) {
  std::string out;
  for (const auto& p : c.params) out += fmt::format("{}{}={}", out.empty() ? "" : " ", p.name, p.value);
  return out.empty() ? "(no params)" : out;
}

template <class T>
T die_unless(Result<T> r, const std::string& what) {
  if (!r) {
    fmt::print(stderr, "bench_search: {}: {}\n", what, r.error().message);
    std::exit(1);
  }
  return std::move(*r);
}

// Every config of every CPU seed of `task`, seeds' own configs first in seed order.
std::vector<Config> enumerate_space(const Task& task) {
  std::vector<Config> seeds, others;
  for (const auto& path : task.seed_paths) {
    const std::string name = fs::path(path).filename().string();
    if (!is_seed_for("cpu", name)) continue;
    const Candidate seed = die_unless(parse_candidate(die_unless(read_file(path), path), path), path);
    std::vector<std::string> sources{seed.source};
    for (const auto& param : seed.params) {
      if (param.choices.empty()) continue;  // any value: not enumerable, kept at its value
      std::vector<std::string> next;
      for (const auto& s : sources)
        for (auto v : param.choices) next.push_back(with_param(s, param.name, v));
      sources = std::move(next);
    }
    const std::string seed_hash = content_hash(normalized_source(seed.source));
    for (auto& s : sources) {
      Config c;
      c.origin = name;
      c.candidate = die_unless(parse_candidate(std::move(s), name), name);
      c.hash = content_hash(normalized_source(c.candidate.source));
      c.seed = c.hash == seed_hash;
      (c.seed ? seeds : others).push_back(std::move(c));
    }
  }
  seeds.insert(seeds.end(), std::make_move_iterator(others.begin()), std::make_move_iterator(others.end()));
  return seeds;
}

// What the cached landscape must match: the seeds, the task's definition, the CPU.
std::string fingerprint(const Task& task) {
  std::string all = host_cpu_name();
  all += die_unless(read_file(task.dir + "/task.toml"), "task.toml");
  for (const auto& path : task.seed_paths)
    if (is_seed_for("cpu", fs::path(path).filename().string())) all += die_unless(read_file(path), path);
  return content_hash(all);
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Durable: hours of measurements, which an interrupted run resumes from.
void save(const nlohmann::json& landscape, const std::string& path) {
  if (Status s = write_file_atomically(path, landscape.dump(1) + "\n", Durability::durable); !s) {
    fmt::print(stderr, "bench_search: {}\n", s.error().message);
    std::exit(1);
  }
}

// Fills in the code hash of every config that has none yet, through `evaluator`'s compile cache.
void hash_codes(const Evaluator& evaluator, const std::vector<Config>& space, nlohmann::json& landscape) {
  for (std::size_t i = 0; i < space.size(); ++i) {
    auto& point = landscape["points"][i];
    if (point.contains("code_hash")) continue;
    auto hash = evaluator.code_hash(space[i].candidate, space[i].origin);
    point["code_hash"] = hash ? *hash : "";  // "": it does not compile, and the search evaluates it
  }
}

// Exhaustive passes over the space, appended to `landscape` until every config has `passes`
// samples: each config evaluated once per pass, compiled afresh (a temporary compile cache).
void measure(const Task& task, const std::vector<Config>& space, int passes, nlohmann::json& landscape,
             const std::string& path) {
  if (landscape.is_null()) {
    landscape = {{"task", task.id()},
                 {"fingerprint", fingerprint(task)},
                 {"cpu", host_cpu_name()},
                 {"passes", 0},
                 {"wall_s", 0.0},
                 {"evaluations", 0},
                 {"evaluator_create_s", 0.0},
                 {"points", nlohmann::json::array()}};
    for (const Config& c : space)
      landscape["points"].push_back({{"origin", c.origin},
                                     {"params", c.candidate.param_bindings()},
                                     {"hash", c.hash},
                                     {"samples", nlohmann::json::array()}});
  }
  if (landscape.at("passes").get<int>() >= passes) return;
  const EvalOptions options;  // the defaults, as `kforge search` evaluates
  for (int pass = landscape.at("passes").get<int>(); pass < passes; ++pass) {
    // A compile cache, compiler and evaluator of its own per pass: every candidate compiled afresh.
    const std::string cache_dir = fs::temp_directory_path() / fmt::format("kforge-bench-search-{}-{}", getpid(), pass);
    const auto create_start = std::chrono::steady_clock::now();
    const auto compiler = make_host_backend({.compiler = "", .cache_dir = cache_dir});
    const Evaluator evaluator = die_unless(Evaluator::create(task, *compiler), "evaluator");
    landscape["evaluator_create_s"] = seconds_since(create_start);
    landscape["compiler"] = compiler->compiler_version();
    for (std::size_t i = 0; i < space.size(); ++i) {
      auto& samples = landscape["points"][i]["samples"];
      if (static_cast<int>(samples.size()) > pass) continue;  // measured before an interruption
      const Config& c = space[i];
      const auto t = std::chrono::steady_clock::now();
      const EvalResult r = evaluator.evaluate(c.candidate, c.origin, options);
      const Point p{to_string(r.status), r.status == EvalStatus::ok ? r.speedup : 0, r.message, seconds_since(t)};
      fmt::print(stderr, "pass {}/{} [{}/{}] {} {}: {}{} ({:.1f} s)\n", pass + 1, passes, i + 1, space.size(), c.origin,
                 params_label(c.candidate), p.status,
                 p.status == "ok" ? fmt::format(" {:.3f}x", p.speedup) : ": " + p.message, p.seconds);
      samples.push_back({{"status", p.status}, {"speedup", p.speedup}, {"message", p.message}, {"seconds", p.seconds}});
      landscape["wall_s"] = landscape.at("wall_s").get<double>() + p.seconds;
      landscape["evaluations"] = landscape.at("evaluations").get<int>() + 1;
      landscape["measured_at"] = now_utc();
      save(landscape, path);  // every sample at once: an interrupted run resumes the pass where it stopped
    }
    hash_codes(evaluator, space, landscape);  // every config just compiled: cache hits
    landscape["passes"] = pass + 1;
    save(landscape, path);
    std::error_code ignored;
    fs::remove_all(cache_dir, ignored);
  }
}

// A landscape measured before code hashes were recorded gets them now: each config compiled once.
void add_code_hashes(const Task& task, const std::vector<Config>& space, nlohmann::json& landscape,
                     const std::string& path) {
  const auto& points = landscape.at("points");
  if (std::all_of(points.begin(), points.end(), [](const auto& p) { return p.contains("code_hash"); })) return;
  fmt::print(stderr, "bench_search: compiling the {} configs of {} once for their code hashes\n", space.size(),
             task.id());
  const auto compiler = make_host_backend();
  const Evaluator evaluator = die_unless(Evaluator::create(task, *compiler), "evaluator");
  hash_codes(evaluator, space, landscape);
  save(landscape, path);
}

// A config's value: the median speedup of its samples when all were ok, else the first failure
// (a config that fails even once is not one the search could keep).
Point value_of(const nlohmann::json& samples) {
  std::vector<double> speedups;
  Point out{"ok", 0, "", 0};
  for (const auto& s : samples) {
    out.seconds += s.at("seconds").get<double>();
    if (s.at("status") != "ok" && out.status == "ok")
      out.status = s.at("status").get<std::string>(), out.message = s.at("message").get<std::string>();
    speedups.push_back(s.at("speedup").get<double>());
  }
  std::sort(speedups.begin(), speedups.end());
  const std::size_t n = speedups.size();
  if (out.status == "ok" && n) out.speedup = n % 2 ? speedups[n / 2] : 0.5 * (speedups[n / 2 - 1] + speedups[n / 2]);
  return out;
}

// ---- the two strategies on the landscape ----------------------------------------------------------

// The best speedup found after each evaluation, in order.
using Trace = std::vector<double>;

struct Landscape {
  std::map<std::string, Point> by_hash;
  std::map<std::string, std::string> code_hashes;  // by config hash; empty: it does not compile
  const Point& at(const std::string& hash) const { return find(by_hash, hash); }
  const std::string& code_hash(const std::string& hash) const { return find(code_hashes, hash); }

 private:
  template <class T>
  static const T& find(const std::map<std::string, T>& map, const std::string& hash) {
    const auto it = map.find(hash);
    if (it == map.end()) {
      fmt::print(stderr, "bench_search: the search proposed a candidate outside the enumerated space\n");
      std::exit(1);
    }
    return it->second;
  }
};

// The status a landscape's sample names.
EvalStatus status_named(const std::string& name) {
  for (auto s : {EvalStatus::ok, EvalStatus::compile_error, EvalStatus::incorrect, EvalStatus::crash,
                 EvalStatus::timeout, EvalStatus::runtime_error, EvalStatus::rejected_cheat})
    if (to_string(s) == name) return s;
  return EvalStatus::runtime_error;
}

// The landscape as the search's evaluator: nothing compiled, nothing timed.
class LandscapeEvaluator final : public CandidateEvaluator {
 public:
  LandscapeEvaluator(const Task& task, const Landscape& landscape) : task_(task), landscape_(landscape) {}
  const Task& task() const override { return task_; }
  EvalResult evaluate(const Candidate& candidate, const std::string&, const EvalOptions&) const override {
    const Point& point = point_of(candidate);
    EvalResult r;
    r.status = status_named(point.status);
    r.message = point.message;
    r.speedup = point.speedup;
    return r;
  }
  Result<std::string> code_hash(const Candidate& candidate, const std::string&) const override {
    const std::string& hash = landscape_.code_hash(hash_of(candidate));
    if (hash.empty()) return make_error(ErrorKind::invalid_input, "{}", point_of(candidate).message);
    return hash;
  }
  // On a fixed landscape a re-verification measures the same number.
  EvalResult reverify(const Candidate&, const std::string&, const EvalResult& first,
                      const EvalOptions&) const override {
    EvalResult r = first;
    r.verified = true;
    return r;
  }

 private:
  static std::string hash_of(const Candidate& candidate) { return content_hash(normalized_source(candidate.source)); }
  const Point& point_of(const Candidate& candidate) const { return landscape_.at(hash_of(candidate)); }
  const Task& task_;
  const Landscape& landscape_;
};

// The offline search itself, SearchOptions' defaults but the budget and the seed, on the landscape.
Trace simulate_search(const LandscapeEvaluator& evaluator, int budget, std::uint64_t seed) {
  SearchOptions options;
  options.evaluations = budget;
  options.seed = seed;
  KernelStore store = die_unless(KernelStore::open(":memory:"), "a kernel library in memory");
  Trace trace;
  SearchReporter reporter;
  reporter.progress = [&trace](const TaskOutcome& so_far, int) { trace.push_back(so_far.best_speedup); };
  Search search(options, store, "bench", "cpu:bench", {}, nullptr, reporter);
  die_unless(search.run(evaluator, std::nullopt, INFINITY), "the search");
  return trace;
}

// The seeds, then distinct configs uniformly without replacement.
Trace simulate_random(const std::vector<Config>& space, const Landscape& landscape, int budget, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<const Config*> rest;
  Trace trace;
  double best = 0;
  auto evaluate = [&](const Config& c) {
    best = std::max(best, landscape.at(c.hash).speedup);
    trace.push_back(best);
  };
  for (const Config& c : space) {
    if (c.seed)
      evaluate(c);
    else
      rest.push_back(&c);
  }
  std::shuffle(rest.begin(), rest.end(), rng);
  for (std::size_t i = 0; i < rest.size() && static_cast<int>(trace.size()) < budget; ++i) evaluate(*rest[i]);
  return trace;
}

struct Summary {
  double mean_best = 0;       // best / optimum, averaged over runs
  double reached_95 = 0;      // fraction of runs with best >= 95% of the optimum
  double reached_opt = 0;     // ... with the optimum itself
  double median_to_95 = NAN;  // evaluations (seeds included) to reach 95%, over the runs that did
  double median_to_opt = NAN;
  double mean_evaluations = 0;
};

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

Summary summarize(const std::vector<Trace>& traces, double optimum) {
  Summary s;
  std::vector<double> to_95, to_opt;
  for (const Trace& t : traces) {
    const double best = t.empty() ? 0 : t.back();
    s.mean_best += best / optimum;
    s.mean_evaluations += static_cast<double>(t.size());
    const auto hit95 = std::find_if(t.begin(), t.end(), [&](double b) { return b >= 0.95 * optimum; });
    const auto hit = std::find_if(t.begin(), t.end(), [&](double b) { return b >= optimum; });
    if (hit95 != t.end()) s.reached_95 += 1, to_95.push_back(static_cast<double>(hit95 - t.begin() + 1));
    if (hit != t.end()) s.reached_opt += 1, to_opt.push_back(static_cast<double>(hit - t.begin() + 1));
  }
  const double n = static_cast<double>(traces.size());
  s.mean_best /= n, s.reached_95 /= n, s.reached_opt /= n, s.mean_evaluations /= n;
  s.median_to_95 = median(to_95), s.median_to_opt = median(to_opt);
  return s;
}

void print_table(const std::string& title, const Summary& search, const Summary& random) {
  fmt::print("\n{}\n", title);
  fmt::print("  {:<16} {:>10} {:>13} {:>12} {:>12} {:>13} {:>11}\n", "strategy", "evals", "best/optimum", ">=95% runs",
             "optimum runs", "median to 95%", "median to opt");
  auto row = [](const std::string& name, const Summary& s) {
    fmt::print("  {:<16} {:>10.1f} {:>13.4f} {:>11.1f}% {:>11.1f}% {:>13} {:>11}\n", name, s.mean_evaluations,
               s.mean_best, 100 * s.reached_95, 100 * s.reached_opt,
               std::isnan(s.median_to_95) ? "-" : fmt::format("{:g}", s.median_to_95),
               std::isnan(s.median_to_opt) ? "-" : fmt::format("{:g}", s.median_to_opt));
  };
  row("offline search", search);
  row("random search", random);
  auto ratio = [](double a, double b) { return b > 0 ? fmt::format("{:.3f}", a / b) : std::string("inf"); };
  fmt::print("  search/random: best/optimum {}, >=95% runs {}, optimum runs {}, median evals to 95% {}\n",
             ratio(search.mean_best, random.mean_best), ratio(search.reached_95, random.reached_95),
             ratio(search.reached_opt, random.reached_opt),
             std::isnan(search.median_to_95) || std::isnan(random.median_to_95)
                 ? std::string("-")
                 : ratio(search.median_to_95, random.median_to_95));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "worker") return worker_main();  // its own evaluation worker
  std::string task_id = "llm/gemm_flat";
  bool remeasure = false;
  int runs = 200, passes = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--task" && i + 1 < argc) {
      task_id = argv[++i];
    } else if (a == "--remeasure") {
      remeasure = true;
    } else if (a == "--passes" && i + 1 < argc) {
      passes = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else {
      fmt::print(stderr, "usage: bench_search [--task SUITE/NAME] [--remeasure] [--passes N] [--runs N]\n");
      return 2;
    }
  }
  const Task task = die_unless(find_task(KFORGE_SOURCE_DIR "/tasks", task_id), task_id);
  const std::vector<Config> space = enumerate_space(task);
  const int exhaustive = static_cast<int>(space.size());
  int seeds = 0;
  for (const Config& c : space) seeds += c.seed;
  if (exhaustive < 2 || seeds == 0) {
    fmt::print(stderr, "bench_search: {} has no CPU seed with a param space to search\n", task.id());
    return 1;
  }

  // 1. The landscape: measured, or read back.
  std::string file_task = task.id();
  std::replace(file_task.begin(), file_task.end(), '/', '_');
  const std::string path = KFORGE_BINARY_DIR "/bench-search-landscape-" + file_task + ".json";
  nlohmann::json landscape_json;  // null: nothing measured yet
  if (!remeasure && fs::exists(path)) {
    try {
      landscape_json = nlohmann::json::parse(die_unless(read_file(path), path));
      if (landscape_json.at("fingerprint") != fingerprint(task) || landscape_json.at("points").size() != space.size()) {
        fmt::print(stderr, "bench_search: {} is stale (other seeds, task or CPU): measuring again\n", path);
        landscape_json = nullptr;
      }
    } catch (const nlohmann::json::exception&) {
      landscape_json = nullptr;
    }
  }
  const int passes_before = landscape_json.is_null() ? 0 : landscape_json.at("passes").get<int>();
  if (passes_before < passes) {
    fmt::print(stderr, "bench_search: evaluating all {} configs of {} once per pass, {} pass(es) to go (minutes)\n",
               exhaustive, task.id(), passes - passes_before);
    measure(task, space, passes, landscape_json, path);
  }
  add_code_hashes(task, space, landscape_json, path);
  Landscape landscape;
  for (const auto& e : landscape_json.at("points")) {
    const std::string hash = e.at("hash");
    landscape.by_hash[hash] = value_of(e.at("samples"));
    landscape.code_hashes[hash] = e.at("code_hash");
  }
  for (const Config& c : space)
    if (!landscape.by_hash.count(c.hash)) {
      fmt::print(stderr, "bench_search: {} lacks a config: run with --remeasure\n", path);
      return 1;
    }

  const double wall_s = landscape_json.at("wall_s");
  const int evaluations = landscape_json.at("evaluations");
  const int passes_used = landscape_json.at("passes");
  fmt::print("task {}: {} configs ({} seeds as they are); landscape in {} ({}), on {}\n", task.id(), exhaustive, seeds,
             path, passes_before >= passes ? "read back" : "measured now", landscape_json.at("cpu").get<std::string>());
  fmt::print(
      "exhaustive pass{}: {} evaluations in {:.1f} s wall = {:.1f} candidates/min (each compiled afresh, default "
      "EvalOptions; last measured {}); each config's value: the median of its {} sample(s)\n",
      passes_used > 1 ? fmt::format("es ({})", passes_used) : "", evaluations, wall_s, 60.0 * evaluations / wall_s,
      landscape_json.at("measured_at").get<std::string>(), passes_used);
  if (passes_used > 1) {  // how much one measurement of a config moves between passes
    std::vector<double> spreads;
    for (const auto& e : landscape_json.at("points")) {
      double lo = INFINITY, hi = 0;
      for (const auto& smp : e.at("samples"))
        lo = std::min(lo, smp.at("speedup").get<double>()), hi = std::max(hi, smp.at("speedup").get<double>());
      if (lo > 0) spreads.push_back(hi / lo);
    }
    std::sort(spreads.begin(), spreads.end());
    if (!spreads.empty())
      fmt::print("noise: max/min of a config's samples, median over configs {:.2f}, worst {:.2f}\n",
                 spreads[spreads.size() / 2], spreads.back());
  }

  // The landscape at a glance: how many configs are near the top decides how hard the problem is.
  std::vector<std::pair<double, const Config*>> ranked;
  for (const Config& c : space) ranked.emplace_back(landscape.at(c.hash).speedup, &c);
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  const double optimum = ranked.front().first;
  if (optimum <= 0) {
    fmt::print(stderr, "bench_search: no config of {} is correct\n", task.id());
    return 1;
  }
  int within95 = 0, failed = 0;
  for (const auto& [s, c] : ranked) within95 += s >= 0.95 * optimum, failed += landscape.at(c->hash).status != "ok";
  fmt::print("landscape: optimum {:.3f}x ({} {}); {} of {} configs within 95% of it, {} not ok\n", optimum,
             ranked.front().second->origin, params_label(ranked.front().second->candidate), within95, exhaustive,
             failed);
  for (const Config& c : space)
    if (c.seed)
      fmt::print("  seed {} {}: {:.3f}x\n", c.origin, params_label(c.candidate), landscape.at(c.hash).speedup);
  fmt::print("  all, best first:");
  for (std::size_t i = 0; i < ranked.size(); ++i) fmt::print("{}{:.2f}", i % 12 ? " " : "\n    ", ranked[i].first);
  fmt::print("\n");
  if (within95 == exhaustive)
    fmt::print("WARNING: every config is within 95% of the optimum: the comparison says nothing on this task\n");

  // 2. Both strategies on the landscape.
  const int budget = static_cast<int>(std::ceil(0.25 * exhaustive));
  const LandscapeEvaluator evaluator(task, landscape);
  auto compare = [&](int b) {
    std::vector<Trace> search, random;
    for (int r = 1; r <= runs; ++r) {
      search.push_back(simulate_search(evaluator, b, static_cast<std::uint64_t>(r)));
      random.push_back(simulate_random(space, landscape, b, static_cast<std::uint64_t>(r)));
    }
    return std::pair{summarize(search, optimum), summarize(random, optimum)};
  };
  const auto [search, random] = compare(budget);
  print_table(fmt::format("budget B = ceil(25% of {}) = {} evaluations, seeds included; {} runs each, on the one "
                          "measured landscape (no re-timing)",
                          exhaustive, budget, runs),
              search, random);
  const auto [search_all, random_all] = compare(exhaustive);
  print_table(fmt::format("no cap but the space ({} evaluations): how many evaluations each needs (the search may "
                          "stop earlier when its neighbourhood is exhausted)",
                          exhaustive),
              search_all, random_all);
  fmt::print(
      "\nissue 7: the search reaches >= 95% of the optimum within {} evaluations in {:.1f}% of runs (random: "
      "{:.1f}%), mean best/optimum {:.4f} vs {:.4f}\n",
      budget, 100 * search.reached_95, 100 * random.reached_95, search.mean_best, random.mean_best);
  return 0;
}
