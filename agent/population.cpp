// The population of one task's search: islands of MAP-Elites grids, parent selection, migration;
// and the source rewriting the operators (operators.cpp) and the dedup build on.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <regex>
#include <sstream>

#include "agent/search.hpp"

namespace kforge {

double draw_uniform(std::mt19937_64& rng) { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); }

int draw_index(std::mt19937_64& rng, std::size_t n) {
  return static_cast<int>(std::uniform_int_distribution<std::size_t>(0, n - 1)(rng));
}

namespace {

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
  const double r = draw_uniform(rng);
  if (r < 0.2) {
    const std::vector<int> archive = top(10);
    return archive[draw_index(rng, archive.size())];
  }
  if (r < 0.3) {
    std::vector<int> correct;
    for (int m : is.members)
      if (programs_[m].correct()) correct.push_back(m);
    return correct[draw_index(rng, correct.size())];
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
  return others.empty() ? -1 : others[draw_index(rng, others.size())];
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

}  // namespace kforge
