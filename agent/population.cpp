// The population of one task's search: islands of MAP-Elites grids, parent selection, migration,
// and the offline operators on `@kforge param` values.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "agent/search.hpp"

namespace kforge {
namespace {

// A uniform draw in [0, 1).
double uniform(std::mt19937_64& rng) { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); }

// An index in [0, n).
int pick(std::mt19937_64& rng, std::size_t n) {
  return static_cast<int>(std::uniform_int_distribution<std::size_t>(0, n - 1)(rng));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

std::string with_param(const std::string& source, const std::string& name, std::int64_t value) {
  // "// @kforge param: NAME=VALUE in {...}": only VALUE changes. Compiling the regex costs far
  // more than matching it (the offline operator sets params on every proposal): once per name and
  // thread.
  thread_local std::map<std::string, std::regex> compiled;
  auto it = compiled.find(name);
  if (it == compiled.end())
    it = compiled.emplace(name, std::regex("@kforge\\s+param:\\s*" + name + "\\s*=\\s*(-?[0-9]+)")).first;
  const std::regex& line = it->second;
  std::smatch match;
  if (!std::regex_search(source, match, line)) return source;
  const auto at = static_cast<std::size_t>(match.position(1));
  return source.substr(0, at) + std::to_string(value) + source.substr(at + match.length(1));
}

std::string normalized_source(const std::string& source) {
  std::string out;
  std::istringstream lines(source);
  bool in_block = false;
  for (std::string line; std::getline(lines, line);) {
    std::string kept;
    for (std::size_t i = 0; i < line.size(); ++i) {
      if (in_block) {
        if (line.compare(i, 2, "*/") == 0) in_block = false, ++i;
        continue;
      }
      if (line.compare(i, 2, "/*") == 0) {
        in_block = true, ++i;
        continue;
      }
      if (line.compare(i, 2, "//") == 0) {
        if (line.find("@kforge", i) != std::string::npos && line.find("@kforge about") == std::string::npos)
          kept += line.substr(i);
        break;
      }
      kept += line[i];
    }
    // Collapse whitespace runs to one space, drop it at both ends.
    std::string collapsed;
    for (char c : kept) {
      const bool space = c == ' ' || c == '\t' || c == '\r';
      if (space && (collapsed.empty() || collapsed.back() == ' ')) continue;
      collapsed += space ? ' ' : c;
    }
    while (!collapsed.empty() && collapsed.back() == ' ') collapsed.pop_back();
    if (!collapsed.empty()) out += collapsed + '\n';
  }
  return out;
}

std::string family_hash(const Candidate& candidate) {
  std::string code = normalized_source(candidate.source);
  for (const auto& param : candidate.params) code = with_param(code, param.name, 0);
  return content_hash(code);
}

// ---- Population ---------------------------------------------------------------------------------

Population::Population(int islands) : islands_(static_cast<std::size_t>(std::max(1, islands))) {}

namespace {

// Register pressure, the resource that most shapes a GPU kernel: registers per thread decide how
// many warps an SM holds (64K registers and at most 64 warps an SM on sm_80 and sm_90, allocated
// in 256-register steps per warp): up to 32 keep all 64 warps, 64 half of them, 96 a third, 128 a
// quarter, 168 twelve, 255 eight. The edges sit at those occupancy steps and never move, so a
// kernel's bin means the same in every run. A kernel that spills is a bin of its own whatever its
// count: local-memory traffic changes its character more than any register count. Static shared
// memory is no descriptor: the compiler does not see the dynamic shared memory that launch lines
// ask for, so it would misfile exactly the kernels that tile through shared memory.
// -1: no compiler reported registers (cpu, hip).
int register_bin(const ResourceUsage& usage) {
  if (usage.registers < 0) return -1;
  if (usage.spill_bytes > 0) return 6;
  constexpr int kEdges[] = {32, 64, 96, 128, 168};
  int bin = 0;
  while (bin < 5 && usage.registers > kEdges[bin]) ++bin;
  return bin;
}

}  // namespace

Population::Cell Population::cell(int index) const {
  const Program& p = programs_[index];
  // Descriptor 1: the code family (its structure apart from params); descriptor 2: where the first
  // param's value sits among its choices; descriptor 3, for GPU kernels: register pressure. Kernels
  // of different structure, primary tile size or occupancy do not compete for one cell.
  const std::string& family = families_[index];
  const int family_bin = static_cast<int>(std::stoull(family.substr(0, 8), nullptr, 16) % kBins);
  int param_bin = 0;
  if (!p.candidate.params.empty()) {
    const KernelParam& first = p.candidate.params.front();
    const auto it = std::find(first.choices.begin(), first.choices.end(), first.value);
    if (it != first.choices.end())
      param_bin = static_cast<int>((it - first.choices.begin()) * kBins / static_cast<long>(first.choices.size()));
  }
  return {family_bin, param_bin, register_bin(p.usage)};
}

void Population::offer(Island& island, int index) {
  const Program& p = programs_[index];
  if (!p.correct()) return;
  auto [it, inserted] = island.elites.emplace(cell(index), index);
  if (!inserted && programs_[it->second].fitness < p.fitness) it->second = index;
}

int Population::add(Program program, bool everywhere) {
  const int index = size();
  program.island = std::clamp(program.island, 0, islands() - 1);
  by_key_[program.key] = index;
  families_.push_back(family_hash(program.candidate));
  programs_.push_back(std::move(program));
  for (int i = 0; i < islands(); ++i) {
    if (!everywhere && i != programs_[index].island) continue;
    islands_[i].members.push_back(index);
    offer(islands_[i], index);
  }
  return index;
}

void Population::update(int index, const Program& program) {
  programs_.at(index) = program;
  families_[index] = family_hash(program.candidate);
  for (Island& island : islands_) {
    // Withdraw it from every cell, then offer it again where it is a member.
    for (auto it = island.elites.begin(); it != island.elites.end();)
      it = it->second == index ? island.elites.erase(it) : std::next(it);
    if (std::find(island.members.begin(), island.members.end(), index) == island.members.end()) continue;
    for (int m : island.members) offer(island, m);
  }
}

bool Population::has_correct(int island) const { return !islands_.at(island).elites.empty(); }

int Population::last_failure(int island) const {
  const auto& members = islands_.at(island).members;
  for (auto it = members.rbegin(); it != members.rend(); ++it)
    if (!programs_[*it].correct()) return *it;
  return -1;
}

int Population::select_parent(int island, std::mt19937_64& rng) const {
  const Island& is = islands_.at(island);
  if (is.elites.empty()) return -1;
  const double r = uniform(rng);
  if (r < 0.2) {
    const std::vector<int> archive = top(10);
    return archive[pick(rng, archive.size())];
  }
  if (r < 0.3) {
    std::vector<int> correct;
    for (int m : is.members)
      if (programs_[m].correct()) correct.push_back(m);
    return correct[pick(rng, correct.size())];
  }
  std::vector<int> elites;
  std::vector<double> logs;
  for (const auto& [cell, index] : is.elites) {
    elites.push_back(index);
    logs.push_back(std::log(std::max(programs_[index].fitness, 1e-9)));
  }
  const double mid = median(logs);
  std::vector<double> deviations;
  for (double l : logs) deviations.push_back(std::fabs(l - mid));
  const double mad = std::max(median(deviations), 1e-6);
  std::vector<double> weights;
  for (std::size_t i = 0; i < elites.size(); ++i) {
    const double z = (logs[i] - mid) / mad;
    weights.push_back(1.0 / (1.0 + std::exp(-10.0 * z)) / (1.0 + programs_[elites[i]].children));
  }
  return elites[std::discrete_distribution<std::size_t>(weights.begin(), weights.end())(rng)];
}

int Population::select_other(int island, int parent, std::mt19937_64& rng) const {
  std::vector<int> others;
  for (int m : islands_.at(island).members)
    if (m != parent && programs_[m].correct()) others.push_back(m);
  return others.empty() ? -1 : others[pick(rng, others.size())];
}

void Population::migrate() {
  const int n = islands();
  if (n < 2) return;
  std::vector<int> bests(n, -1);
  for (int i = 0; i < n; ++i)
    for (const auto& [cell, index] : islands_[i].elites)
      if (bests[i] < 0 || programs_[index].fitness > programs_[bests[i]].fitness) bests[i] = index;
  for (int i = 0; i < n; ++i) {
    const int migrant = bests[i];
    Island& next = islands_[(i + 1) % n];
    if (migrant < 0 || std::find(next.members.begin(), next.members.end(), migrant) != next.members.end()) continue;
    next.members.push_back(migrant);
    offer(next, migrant);
  }
}

int Population::best() const {
  const auto t = top(1);
  return t.empty() ? -1 : t.front();
}

std::vector<int> Population::top(int n) const {
  std::vector<int> correct;
  for (int i = 0; i < size(); ++i)
    if (programs_[i].correct()) correct.push_back(i);
  // Verified before unverified at equal fitness; the earlier first, so the order is reproducible.
  std::stable_sort(correct.begin(), correct.end(), [&](int a, int b) {
    return programs_[a].fitness > programs_[b].fitness;
  });
  if (static_cast<int>(correct.size()) > n) correct.resize(n);
  return correct;
}

std::vector<int> Population::diverse(int n, int parent) const {
  std::vector<int> out;
  const Cell parent_cell = parent >= 0 ? cell(parent) : Cell{-1, -1, -1};
  const std::vector<int> best = top(2);
  for (const Island& island : islands_)
    for (const auto& [c, index] : island.elites)
      if (c != parent_cell && index != parent && std::find(out.begin(), out.end(), index) == out.end() &&
          std::find(best.begin(), best.end(), index) == best.end())
        out.push_back(index);
  std::stable_sort(out.begin(), out.end(), [&](int a, int b) { return programs_[a].fitness > programs_[b].fitness; });
  if (static_cast<int>(out.size()) > n) out.resize(n);
  return out;
}

std::vector<int> Population::children_of(const std::string& key) const {
  std::vector<int> out;
  for (int i = 0; i < size(); ++i)
    if (programs_[i].parent_key == key || programs_[i].other_parent_key == key) out.push_back(i);
  return out;
}

std::optional<int> Population::find(const std::string& key) const {
  const auto it = by_key_.find(key);
  return it == by_key_.end() ? std::nullopt : std::optional<int>(it->second);
}

nlohmann::json Population::to_json() const {
  nlohmann::json programs = nlohmann::json::array();
  for (const Program& p : programs_)
    programs.push_back({{"key", p.key},
                        {"parent", p.parent_key},
                        {"other_parent", p.other_parent_key},
                        {"operator", p.operator_name},
                        {"origin", p.origin},
                        {"island", p.island},
                        {"status", p.status},
                        {"feedback", p.feedback},
                        {"fitness", p.fitness},
                        {"median_us", p.median_us},
                        {"roofline_pct", p.roofline_pct},
                        {"verified", p.verified},
                        {"children", p.children},
                        {"registers", p.usage.registers},
                        {"spill_bytes", p.usage.spill_bytes},
                        {"shared_bytes", p.usage.shared_bytes},
                        {"code_bytes", p.code_bytes}});
  nlohmann::json islands = nlohmann::json::array();
  for (const Island& island : islands_) {
    nlohmann::json elites = nlohmann::json::array();
    for (const auto& [c, index] : island.elites) elites.push_back({c[0], c[1], index, c[2]});
    islands.push_back({{"members", island.members}, {"elites", elites}});
  }
  return {{"programs", programs}, {"islands", islands}};
}

Result<Population> Population::from_json(const nlohmann::json& j,
                                         const std::function<Result<Candidate>(const std::string&)>& candidate_of) {
  try {
    Population population(static_cast<int>(j.at("islands").size()));
    for (const auto& e : j.at("programs")) {
      Program p;
      p.key = e.at("key");
      auto candidate = candidate_of(p.key);
      if (!candidate) return candidate.error();
      p.candidate = std::move(*candidate);
      p.parent_key = e.at("parent"), p.other_parent_key = e.at("other_parent");
      p.operator_name = e.at("operator"), p.origin = e.at("origin"), p.island = e.at("island");
      p.status = e.at("status"), p.feedback = e.at("feedback"), p.fitness = e.at("fitness");
      p.median_us = e.at("median_us"), p.roofline_pct = e.at("roofline_pct"), p.verified = e.at("verified");
      p.children = e.at("children");
      // A state saved before resources were reported has none: unknown, as on the cpu.
      p.usage = {e.value("registers", -1), e.value("spill_bytes", -1), e.value("shared_bytes", -1)};
      p.code_bytes = e.value("code_bytes", std::int64_t{0});
      population.by_key_[p.key] = population.size();
      population.families_.push_back(family_hash(p.candidate));
      population.programs_.push_back(std::move(p));
    }
    for (std::size_t i = 0; i < population.islands_.size(); ++i) {
      const auto& island = j.at("islands")[i];
      population.islands_[i].members = island.at("members").get<std::vector<int>>();
      for (const auto& e : island.at("elites"))
        population.islands_[i].elites[{e.at(0).get<int>(), e.at(1).get<int>(), e.size() > 3 ? e[3].get<int>() : -1}] =
            e.at(2).get<int>();
    }
    for (const Island& island : population.islands_) {
      for (int m : island.members)
        if (m < 0 || m >= population.size()) return make_error(ErrorKind::invalid_input, "member {} out of range", m);
      for (const auto& [c, index] : island.elites)
        if (index < 0 || index >= population.size())
          return make_error(ErrorKind::invalid_input, "elite {} out of range", index);
    }
    return population;
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorKind::invalid_input, "the saved population is malformed: {}", e.what());
  }
}

// ---- offline operators --------------------------------------------------------------------------

namespace {

Result<Proposal> proposal_from(const Program& parent, std::string source, std::string operator_name) {
  auto candidate = parse_candidate(std::move(source), parent.origin);
  if (!candidate) return candidate.error();
  Proposal p;
  p.candidate = std::move(*candidate);
  p.operator_name = std::move(operator_name);
  p.parent_key = parent.key;
  p.island = parent.island;
  return p;
}

}  // namespace

Result<Proposal> mutate_params(const Program& parent, std::mt19937_64& rng) {
  std::vector<const KernelParam*> tunable;
  for (const auto& param : parent.candidate.params)
    if (param.choices.size() > 1) tunable.push_back(&param);
  if (tunable.empty()) return make_error(ErrorKind::invalid_input, "{} has no param with choices", parent.origin);
  std::string source = parent.candidate.source;
  const int changes = tunable.size() > 1 && uniform(rng) < 0.3 ? 2 : 1;
  for (int c = 0; c < changes; ++c) {
    const KernelParam& param = *tunable[pick(rng, tunable.size())];
    const auto& choices = param.choices;
    const int at = static_cast<int>(std::find(choices.begin(), choices.end(), param.value) - choices.begin());
    int next;
    if (uniform(rng) < 0.7 && at < static_cast<int>(choices.size())) {  // a neighbour
      next = at == 0 ? 1 : at + 1 == static_cast<int>(choices.size()) ? at - 1 : at + (uniform(rng) < 0.5 ? -1 : 1);
    } else {
      next = pick(rng, choices.size());
    }
    source = with_param(source, param.name, choices[next]);
  }
  return proposal_from(parent, std::move(source), "param_mutation");
}

Result<Proposal> cross_params(const Program& a, const Program& b, std::mt19937_64& rng) {
  std::string source = a.candidate.source;
  const Bindings theirs = b.candidate.param_bindings();
  for (const auto& param : a.candidate.params)
    if (const auto it = theirs.find(param.name); it != theirs.end() && uniform(rng) < 0.5)
      source = with_param(source, param.name, it->second);
  auto p = proposal_from(a, std::move(source), "param_crossover");
  if (p) p->other_parent_key = b.key;
  return p;
}

Result<Proposal> switch_variant(const Program& parent, const Program& variant) {
  std::string source = variant.candidate.source;
  const Bindings ours = parent.candidate.param_bindings();
  for (const auto& param : variant.candidate.params)
    if (const auto it = ours.find(param.name);
        it != ours.end() && std::find(param.choices.begin(), param.choices.end(), it->second) != param.choices.end())
      source = with_param(source, param.name, it->second);
  auto p = proposal_from(variant, std::move(source), "variant_switch");
  if (p) p->parent_key = parent.key, p->other_parent_key = variant.key, p->island = parent.island;
  return p;
}

namespace {

constexpr int kSweepAfterDuplicates = 10;
constexpr std::size_t kMaxSweep = 4096;  // param combinations listed at most

// The parent's param combination nearest to its own (fewest params changed, then smallest moves
// among the choices) that `unseen` accepts, ties broken at random; none if the space is too large.
std::optional<Proposal> nearest_unseen(const Program& parent, const std::function<bool(const Proposal&)>& unseen,
                                       std::mt19937_64& rng) {
  const auto& params = parent.candidate.params;
  std::size_t total = 1;
  for (const auto& param : params) {
    if (param.choices.empty()) return std::nullopt;
    total *= param.choices.size();
    if (total > kMaxSweep) return std::nullopt;
  }
  std::vector<int> own;
  for (const auto& param : params)
    own.push_back(static_cast<int>(std::find(param.choices.begin(), param.choices.end(), param.value) -
                                   param.choices.begin()));
  std::vector<std::pair<std::pair<int, int>, std::vector<int>>> points;  // (changed, moved), choice indices
  for (std::size_t n = 0; n < total; ++n) {
    std::vector<int> at;
    int changed = 0, moved = 0;
    for (std::size_t i = 0, rest = n; i < params.size(); ++i) {
      at.push_back(static_cast<int>(rest % params[i].choices.size()));
      rest /= params[i].choices.size();
      changed += at[i] != own[i];
      moved += std::abs(at[i] - own[i]);
    }
    if (changed) points.push_back({{changed, moved}, at});
  }
  std::shuffle(points.begin(), points.end(), rng);
  std::stable_sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [distance, at] : points) {
    std::string source = parent.candidate.source;
    for (std::size_t i = 0; i < params.size(); ++i) source = with_param(source, params[i].name, params[i].choices[at[i]]);
    auto proposal = proposal_from(parent, std::move(source), "param_sweep");
    if (proposal && unseen(*proposal)) return std::move(*proposal);
  }
  return std::nullopt;
}

}  // namespace

std::optional<Proposal> propose_offline(Population& population, std::mt19937_64& rng, std::set<std::string>& seen,
                                        OfflineCounters& counters) {
  while (counters.duplicates_in_row < kMaxDuplicatesInRowOffline) {
    const int island = counters.next_island++ % population.islands();
    int parent = population.select_parent(island, rng);
    if (parent < 0) parent = population.best();  // nothing to fix offline: start from the best
    if (parent < 0) return std::nullopt;
    Program& p = population.at(parent);
    // Other correct families to switch to (a seed variant and its descendants), best first.
    std::vector<int> variants;
    std::set<std::string> families{population.family(parent)};
    for (int i : population.top(population.size()))
      if (families.insert(population.family(i)).second) variants.push_back(i);
    const double r = uniform(rng);
    Result<Proposal> proposal = make_error(ErrorKind::invalid_input, "none");
    if (r < 0.1 && !variants.empty()) {
      proposal = switch_variant(p, population.at(variants[pick(rng, variants.size())]));
    } else if (r < 0.3) {
      const int other = population.select_other(island, parent, rng);
      if (other >= 0 && population.family(other) == population.family(parent))
        proposal = cross_params(p, population.at(other), rng);
    }
    if (!proposal) proposal = mutate_params(p, rng);
    if (!proposal && !variants.empty()) proposal = switch_variant(p, population.at(variants[pick(rng, variants.size())]));
    ++p.children;
    auto unseen = [&](const Proposal& q) { return !seen.count(content_hash(normalized_source(q.candidate.source))); };
    // After a run of duplicates the random moves rarely find what is left: take the nearest unseen
    // point of the parent's own param space, when that space is small enough to list.
    if (counters.duplicates_in_row >= kSweepAfterDuplicates && (!proposal || !unseen(*proposal)))
      if (auto nearest = nearest_unseen(p, unseen, rng)) proposal = std::move(*nearest);
    if (!proposal || !seen.insert(content_hash(normalized_source(proposal->candidate.source))).second) {
      ++counters.duplicates_in_row, ++counters.duplicates;
      continue;
    }
    counters.duplicates_in_row = 0;
    proposal->island = island;
    return std::move(*proposal);
  }
  return std::nullopt;
}

}  // namespace kforge
