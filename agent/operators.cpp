// The search's operators, each with its probability, in one place: how a parent (or two) becomes
// a candidate. Offline: a mutation or crossover of `@kforge param` values, a switch to another
// seed variant, a sweep of the parent's param space once the random moves keep repeating. With
// an LLM: a SEARCH/REPLACE diff, a rewrite, a crossover or a fix, chosen here and turned from the
// model's reply into a candidate here; the prompts that ask for them are prompting.cpp's.
#include <algorithm>
#include <functional>
#include <set>

#include "agent/search.hpp"

namespace kforge {
namespace {

// Offline: given a parent, p 0.1 a switch to another correct family, p 0.2 (up to 0.3) a
// crossover with a program of the same family, else a param mutation.
constexpr double kVariantSwitchBelow = 0.1;
constexpr double kParamCrossoverBelow = 0.3;
// A param mutation changes two params p 0.3 (one otherwise), each to a neighbouring choice p 0.7
// (either side p 0.5) or to any choice; a crossover takes each shared param from the other p 0.5.
constexpr double kTwoChangesP = 0.3;
constexpr double kNeighbourP = 0.7;
constexpr double kLowerNeighbourP = 0.5;
constexpr double kTakeTheirsP = 0.5;
// With an LLM, on an island with a correct program: p 0.6 a diff, p 0.3 (up to 0.9) a rewrite,
// p 0.1 a crossover.
constexpr double kLlmDiffBelow = 0.6;
constexpr double kLlmRewriteBelow = 0.9;

// After this many duplicates in a row, the nearest unseen point of the parent's param space.
constexpr int kSweepAfterDuplicates = 10;
constexpr std::size_t kMaxSweep = 4096;  // param combinations listed at most

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

// ---- offline ------------------------------------------------------------------------------------

Result<Proposal> mutate_params(const Program& parent, std::mt19937_64& rng) {
  std::vector<const KernelParam*> tunable;
  for (const auto& param : parent.candidate.params)
    if (param.choices.size() > 1) tunable.push_back(&param);
  if (tunable.empty()) return make_error(ErrorKind::invalid_input, "{} has no param with choices", parent.origin);
  std::string source = parent.candidate.source;
  const int changes = tunable.size() > 1 && draw_uniform(rng) < kTwoChangesP ? 2 : 1;
  for (int c = 0; c < changes; ++c) {
    const KernelParam& param = *tunable[draw_index(rng, tunable.size())];
    const auto& choices = param.choices;
    const int at = static_cast<int>(std::find(choices.begin(), choices.end(), param.value) - choices.begin());
    const int last = static_cast<int>(choices.size()) - 1;
    int next;
    if (draw_uniform(rng) < kNeighbourP && at <= last) {
      next = at == 0 ? 1 : at == last ? at - 1 : at + (draw_uniform(rng) < kLowerNeighbourP ? -1 : 1);
    } else {
      next = draw_index(rng, choices.size());
    }
    source = with_param(source, param.name, choices[next]);
  }
  return proposal_from(parent, std::move(source), "param_mutation");
}

Result<Proposal> cross_params(const Program& a, const Program& b, std::mt19937_64& rng) {
  std::string source = a.candidate.source;
  const Bindings theirs = b.candidate.param_bindings();
  for (const auto& param : a.candidate.params)
    if (const auto it = theirs.find(param.name); it != theirs.end() && draw_uniform(rng) < kTakeTheirsP)
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

// One offline candidate from `parent`, drawn by the operators' probabilities.
Result<Proposal> offline_operator(const Population& population, int island, int parent, std::mt19937_64& rng) {
  const Program& p = population.at(parent);
  // Other correct families to switch to (a seed variant and its descendants), best first.
  std::vector<int> variants;
  std::set<std::string> families{population.family(parent)};
  for (int i : population.top(population.size()))
    if (families.insert(population.family(i)).second) variants.push_back(i);
  auto some_variant = [&]() -> const Program& { return population.at(variants[draw_index(rng, variants.size())]); };
  const double r = draw_uniform(rng);
  Result<Proposal> proposal = make_error(ErrorKind::invalid_input, "none");
  if (r < kVariantSwitchBelow && !variants.empty()) {
    proposal = switch_variant(p, some_variant());
  } else if (r < kParamCrossoverBelow) {
    const int other = population.select_other(island, parent, rng);
    if (other >= 0 && population.family(other) == population.family(parent))
      proposal = cross_params(p, population.at(other), rng);
  }
  if (!proposal) proposal = mutate_params(p, rng);
  if (!proposal && !variants.empty()) proposal = switch_variant(p, some_variant());
  return proposal;
}

}  // namespace

std::optional<Proposal> propose_offline(Population& population, std::mt19937_64& rng, std::set<std::string>& seen,
                                        OfflineCounters& counters) {
  auto hash_of = [](const Proposal& q) { return content_hash(normalized_source(q.candidate.source)); };
  auto unseen = [&](const Proposal& q) { return !seen.count(hash_of(q)); };
  while (counters.duplicates_in_row < kMaxDuplicatesInRowOffline) {
    const int island = counters.next_island++ % population.islands();
    int parent = population.select_parent(island, rng);
    if (parent < 0) parent = population.best();  // nothing to fix offline: start from the best
    if (parent < 0) return std::nullopt;
    Result<Proposal> proposal = offline_operator(population, island, parent, rng);
    Program& p = population.at(parent);
    ++p.children;
    // After a run of duplicates the random moves rarely find what is left: take the nearest unseen
    // point of the parent's own param space, when that space is small enough to list.
    if (counters.duplicates_in_row >= kSweepAfterDuplicates && (!proposal || !unseen(*proposal)))
      if (auto nearest = nearest_unseen(p, unseen, rng)) proposal = std::move(*nearest);
    if (!proposal || !seen.insert(hash_of(*proposal)).second) {
      ++counters.duplicates_in_row, ++counters.duplicates;
      continue;
    }
    counters.duplicates_in_row = 0;
    proposal->island = island;
    return std::move(*proposal);
  }
  return std::nullopt;
}

// ---- with an LLM --------------------------------------------------------------------------------

LlmOperator choose_llm_operator(const Population& population, int island, std::mt19937_64& rng) {
  LlmOperator op;
  if (!population.has_correct(island)) {
    op.parent = population.last_failure(island);
    op.kind = op.parent >= 0 ? "fix" : "rewrite";
    if (op.parent < 0) op.parent = population.best();
    return op;
  }
  op.parent = population.select_parent(island, rng);
  const double r = draw_uniform(rng);
  op.kind = r < kLlmDiffBelow ? "diff" : r < kLlmRewriteBelow ? "rewrite" : "crossover";
  if (op.kind == "crossover" && (op.other = population.select_other(island, op.parent, rng)) < 0) op.kind = "diff";
  return op;
}

Result<Candidate> llm_candidate(LlmClient& llm, std::vector<LlmMessage> messages, const std::string& kind,
                                const std::string& parent_source, const std::string& origin) {
  for (int round = 0;; ++round) {
    auto reply = llm.complete(messages);
    if (!reply) return reply.error();
    Result<std::string> source = [&]() -> Result<std::string> {
      if (kind != "diff") return extract_kernel_source(reply->text);
      auto blocks = parse_diff_blocks(reply->text);
      if (!blocks) return blocks.error();
      return apply_diff_blocks(parent_source, *blocks);
    }();
    Result<Candidate> candidate = source ? parse_candidate(*source, origin) : Result<Candidate>(source.error());
    if (candidate || round == 1) return candidate;
    messages.push_back({"assistant", reply->text});
    messages.push_back(
        {"user", fmt::format("Your reply could not be used: {}\nAnswer again in the form asked for{}.",
                             candidate.error().message,
                             kind == "diff" ? ", with SEARCH parts copied exactly from the parent kernel as shown"
                                            : ": the whole kernel file in one fenced code block, header lines included")});
  }
}

}  // namespace kforge
