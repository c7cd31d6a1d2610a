// The documents behind the pages: one JSON object per page, read from the library in one read
// transaction (a consistent snapshot while a search writes).
#include "web/data.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <stdexcept>

#include "agent/agent.hpp"
#include "agent/search.hpp"

namespace kforge::web {
namespace {

using nlohmann::json;

// How many LLM calls made before a kernel was first evaluated are tried as its maker.
constexpr int kLlmCallsToMatch = 64;

// The text of a chat reply as the provider sent it (OpenAI: choices[0].message.content;
// Anthropic: its text blocks); empty when the body is neither.
std::string reply_text(const std::string& provider, const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (!j.is_object()) return "";
  std::string text;
  if (provider == "anthropic") {
    if (j.contains("content") && j["content"].is_array())
      for (const auto& block : j["content"])
        if (block.value("type", "") == "text" && block.contains("text") && block["text"].is_string())
          text += block["text"].get<std::string>();
    return text;
  }
  if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
    const json& message = j["choices"][0].value("message", json::object());
    if (message.contains("content") && message["content"].is_string()) return message["content"];
  }
  return "";
}

// Whether `reply` yields `source`: as a whole kernel, or as a diff of the parent.
bool reply_made(const std::string& reply, const std::string& parent_source, const std::string& source) {
  const std::string want = normalized_source(source);
  if (auto whole = extract_kernel_source(reply); whole && normalized_source(*whole) == want) return true;
  if (parent_source.empty()) return false;
  auto blocks = parse_diff_blocks(reply);
  if (!blocks) return false;
  auto applied = apply_diff_blocks(parent_source, *blocks);
  return applied && normalized_source(*applied) == want;
}

// A run's status: ended, running (written to in the last 10 minutes) or stopped (never ended:
// killed, resumable), its wall time so far, and its LLM calls and cost.
const char* const kRunColumns = R"sql(
  r.run_id, r.command, r.host, r.llm_models, r.seed, r.started_at, r.ended_at,
  CASE WHEN r.ended_at IS NOT NULL THEN 'ended'
       WHEN (julianday('now') - julianday(coalesce(a.last, r.started_at))) * 86400 < 600 THEN 'running'
       ELSE 'stopped' END AS status,
  round((julianday(coalesce(r.ended_at, a.last, r.started_at)) - julianday(r.started_at)) * 86400, 1) AS wall_s,
  (SELECT count(*) FROM llm_call c WHERE c.run_id = r.run_id) AS llm_calls,
  (SELECT total(cost_usd) FROM llm_call c WHERE c.run_id = r.run_id) AS llm_cost_usd
FROM run r LEFT JOIN (SELECT max(created_at) AS last FROM evaluation WHERE run_id = ?1) a)sql";

// The tasks of run ?N, or every task when ?N is empty: `k.task IN (...)` for a kernel k.
std::string of_run_tasks(int n) {
  return fmt::format("(?{0} = '' OR k.task IN (SELECT DISTINCT k2.task FROM evaluation e2 JOIN kernel k2 "
                     "USING(kernel_key) WHERE e2.run_id = ?{0}))",
                     n);
}

const char* const kTaskSummary = R"sql(
SELECT k.task, count(*) AS evaluations, sum(e.status = 'ok') AS correct, sum(e.status <> 'ok') AS failed,
       count(DISTINCT e.kernel_key) AS kernels,
       max(CASE WHEN e.status = 'ok' AND e.verified THEN e.speedup END) AS best_speedup
FROM evaluation e JOIN kernel k USING(kernel_key) WHERE e.run_id = ?1 GROUP BY k.task ORDER BY k.task)sql";

}  // namespace

Reader::Reader(sqlite3* db) : db_(db) {}

json Reader::rows(const std::string& sql, const std::vector<std::string>& args) const {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
    throw std::runtime_error(fmt::format("SQL: {}", sqlite3_errmsg(db_)));
  for (std::size_t i = 0; i < args.size(); ++i)
    sqlite3_bind_text(st, static_cast<int>(i + 1), args[i].c_str(), static_cast<int>(args[i].size()), SQLITE_TRANSIENT);
  json out = json::array();
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    json row = json::object();
    for (int c = 0; c < sqlite3_column_count(st); ++c) {
      const char* name = sqlite3_column_name(st, c);
      switch (sqlite3_column_type(st, c)) {
        case SQLITE_INTEGER: row[name] = sqlite3_column_int64(st, c); break;
        case SQLITE_FLOAT: row[name] = sqlite3_column_double(st, c); break;
        case SQLITE_NULL: row[name] = nullptr; break;
        default: {
          const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, c));
          row[name] = std::string(t, sqlite3_column_bytes(st, c));
        }
      }
    }
    out.push_back(std::move(row));
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) throw std::runtime_error(fmt::format("SQL: {}", sqlite3_errmsg(db_)));
  return out;
}

json Reader::row(const std::string& sql, const std::vector<std::string>& args) const {
  json r = rows(sql, args);
  return r.empty() ? json(nullptr) : r[0];
}

json Reader::run(const std::string& run_id) const {
  json r = row(fmt::format("SELECT {} WHERE r.run_id = ?1", kRunColumns), {run_id});
  if (r.is_null()) return r;
  r["tasks"] = rows(kTaskSummary, {run_id});
  std::int64_t evaluations = 0, correct = 0;
  for (const auto& t : r["tasks"]) evaluations += t["evaluations"].get<std::int64_t>(), correct += t["correct"].get<std::int64_t>();
  r["evaluations"] = evaluations, r["correct"] = correct, r["failed"] = evaluations - correct;
  return r;
}

json Reader::runs(const std::string& run_id) const {
  json out = json::array();
  for (const auto& id : rows("SELECT run_id FROM run WHERE ?1 = '' OR run_id = ?1 ORDER BY started_at DESC, run_id", {run_id}))
    out.push_back(run(id["run_id"]));
  return {{"runs", out},
          {"devices", rows("SELECT device_key, name FROM device WHERE ?1 = '' OR device_key IN "
                           "(SELECT device_key FROM evaluation WHERE run_id = ?1) ORDER BY device_key",
                           {run_id})}};
}

json Reader::run_page(const std::string& run_id) const {
  json r = run(run_id);
  if (r.is_null()) return r;
  r["by_status"] = rows(
      "SELECT k.task, e.status, count(*) AS n FROM evaluation e JOIN kernel k USING(kernel_key) "
      "WHERE e.run_id = ?1 GROUP BY k.task, e.status ORDER BY k.task, e.status",
      {run_id});
  r["llm"] = rows(
      "SELECT model, status, count(*) AS calls, sum(prompt_tokens) AS prompt_tokens, "
      "sum(completion_tokens) AS completion_tokens, total(cost_usd) AS cost_usd, avg(latency_ms) AS mean_latency_ms "
      "FROM llm_call WHERE run_id = ?1 GROUP BY model, status ORDER BY model, status",
      {run_id});
  return r;
}

json Reader::task(const std::string& run_id, const std::string& task) const {
  json run = row("SELECT run_id, ended_at FROM run WHERE run_id = ?1", {run_id});
  if (run.is_null()) return run;
  json evaluations = rows(
      "SELECT e.evaluation_id, e.kernel_key, e.status, e.speedup, e.verified, e.created_at, k.operator, k.origin "
      "FROM evaluation e JOIN kernel k USING(kernel_key) WHERE e.run_id = ?1 AND k.task = ?2 ORDER BY e.evaluation_id",
      {run_id, task});
  if (evaluations.empty()) return nullptr;
  // After each evaluation, the best speedup re-verified so far: as the search counts a new best,
  // only once a fresh worker confirmed it.
  json best_so_far = json::array();
  double best = 0;
  for (auto& e : evaluations) {
    if (e["status"] == "ok" && e["verified"] == 1 && e["speedup"].is_number())
      best = std::max(best, e["speedup"].get<double>());
    best_so_far.push_back(best);
  }
  json kernels = rows(R"sql(
SELECT k.kernel_key, k.parent_key, k.operator, k.origin, min(e.evaluation_id) AS first_evaluation,
       max(CASE WHEN e.status = 'ok' THEN e.speedup END) AS best_speedup,
       (SELECT status FROM evaluation x WHERE x.kernel_key = k.kernel_key AND x.run_id = ?1
        ORDER BY x.evaluation_id DESC LIMIT 1) AS status
FROM kernel k JOIN evaluation e USING(kernel_key) WHERE e.run_id = ?1 AND k.task = ?2
GROUP BY k.kernel_key ORDER BY first_evaluation)sql",
                      {run_id, task});
  // The islands' MAP-Elites grids, from the search's saved state.
  json islands = json::array();
  json state = row("SELECT state FROM search_state WHERE run_id = ?1 AND task = ?2", {run_id, task});
  if (!state.is_null()) {
    const json s = json::parse(state["state"].get<std::string>(), nullptr, false);
    const json population = s.is_object() ? s.value("population", json::object()) : json::object();
    const json programs = population.value("programs", json::array());
    int i = 0;
    for (const auto& island : population.value("islands", json::array())) {
      json cells = json::array();
      for (const auto& e : island.value("elites", json::array())) {
        if (!e.is_array() || e.size() < 4 || !e[2].is_number_integer()) continue;
        const std::size_t index = e[2];
        if (index >= programs.size()) continue;
        const json& p = programs[index];
        cells.push_back({{"family_bin", e[0]}, {"param_bin", e[1]}, {"register_bin", e[3]},
                         {"kernel_key", p.value("key", "")}, {"fitness", p.value("fitness", 0.0)},
                         {"origin", p.value("origin", "")}});
      }
      islands.push_back({{"island", i++}, {"members", island.value("members", json::array()).size()}, {"cells", cells}});
    }
  }
  return {{"run_id", run_id}, {"task", task}, {"ended", !run["ended_at"].is_null()},
          {"evaluations", evaluations}, {"best_so_far", best_so_far}, {"kernels", kernels},
          {"bins", Population::kBins}, {"islands", islands}};
}

json Reader::kernel(const std::string& key) const {
  json k = row(
      "SELECT kernel_key, task, backend, entry, origin, operator, parent_key, run_id, params_json, source, created_at "
      "FROM kernel WHERE kernel_key = ?1",
      {key});
  if (k.is_null()) return k;
  json parent = row("SELECT kernel_key, origin, source FROM kernel WHERE kernel_key = ?1", {k["parent_key"]});
  k["parent"] = parent;
  k["children"] = rows("SELECT kernel_key, operator, origin FROM kernel WHERE parent_key = ?1 ORDER BY created_at", {key});
  json evaluations = rows(
      "SELECT evaluation_id, device_key, run_id, status, message, log, output, verified, baseline, speedup, "
      "registers, spill_bytes, shared_bytes, code_bytes, created_at FROM evaluation WHERE kernel_key = ?1 "
      "ORDER BY evaluation_id",
      {key});
  for (auto& e : evaluations)
    e["measurements"] = rows(
        "SELECT shape, kind, correct, max_abs_error, max_rel_error, n, median_us, p20_us, p80_us, cv, gbps, gflops, "
        "baseline_median_us, speedup, roofline_pct FROM measurement WHERE evaluation_id = ?1 ORDER BY kind, shape",
        {std::to_string(e["evaluation_id"].get<std::int64_t>())});
  k["evaluations"] = evaluations;

  // The LLM call whose reply is this kernel: among the run's answered calls made before it was
  // first evaluated, newest first.
  k["llm_call"] = nullptr;
  const std::string op = k["operator"];
  if (op.rfind("llm", 0) == 0 && !evaluations.empty()) {
    const std::string parent_source = parent.is_null() ? "" : parent["source"].get<std::string>();
    const json calls = rows(fmt::format("SELECT call_key, model, provider, request, response, prompt_tokens, "
                                        "completion_tokens, cost_usd, latency_ms, created_at FROM llm_call "
                                        "WHERE run_id = ?1 AND status = 'ok' AND created_at <= ?2 "
                                        "ORDER BY created_at DESC LIMIT {}",
                                        kLlmCallsToMatch),
                            {k["run_id"], evaluations[0]["created_at"]});
    for (const auto& c : calls) {
      const std::string reply = reply_text(c["provider"], c["response"]);
      if (reply.empty() || !reply_made(reply, parent_source, k["source"])) continue;
      json call = c;
      call.erase("response");
      call.erase("request");
      call["reply"] = reply;
      // The conversation sent: OpenAI and Anthropic both send "messages" (Anthropic's system apart).
      json messages = json::array();
      const json request = json::parse(c["request"].get<std::string>(), nullptr, false);
      if (request.is_object()) {
        if (request.contains("system") && request["system"].is_string())
          messages.push_back({{"role", "system"}, {"content", request["system"]}});
        for (const auto& m : request.value("messages", json::array()))
          if (m.is_object() && m.contains("content") && m["content"].is_string())
            messages.push_back({{"role", m.value("role", "")}, {"content", m["content"]}});
      }
      call["messages"] = messages;
      k["llm_call"] = call;
      break;
    }
  }
  return k;
}

json Reader::device(const std::string& device_key, const std::string& run_id) const {
  json d = row(
      "SELECT device_key, vendor, arch, units, name, memory_bytes, bandwidth_gbps, peak_gflops FROM device "
      "WHERE device_key = ?1",
      {device_key});
  if (d.is_null()) return d;
  d["kernels"] = rows(R"sql(
SELECT b.problem_key, b.op, b.kernel_key, b.median_us, b.speedup, b.roofline_pct, b.stale, m.shape, m.gbps, m.gflops
FROM best b JOIN evaluation e ON e.evaluation_key = b.evaluation_key
            JOIN measurement m ON m.evaluation_id = e.evaluation_id AND m.problem_key = b.problem_key
            LEFT JOIN kernel k ON k.kernel_key = b.kernel_key
WHERE b.device_key = ?1 AND )sql" + of_run_tasks(2) + " ORDER BY b.op, b.problem_key",
                      {device_key, run_id});
  return d;
}

json Reader::library(const std::string& run_id) const {
  json counts = row(R"sql(
SELECT (SELECT count(*) FROM kernel) AS kernels, (SELECT count(*) FROM evaluation) AS evaluations,
       (SELECT count(*) FROM measurement) AS measurements, (SELECT count(*) FROM problem) AS problems,
       (SELECT count(*) FROM best) AS best, (SELECT count(*) FROM best WHERE stale) AS stale_best,
       (SELECT count(*) FROM miss) AS misses, (SELECT total(count) FROM miss) AS missed_lookups,
       (SELECT count(*) FROM run) AS runs, (SELECT count(*) FROM llm_call) AS llm_calls)sql");
  return {{"counts", counts},
          {"run_id", run_id},
          {"best", rows("SELECT b.problem_key, b.device_key, b.env_key, b.op, b.dtype, b.static_key, b.dyn, "
                        "b.kernel_key, k.origin, b.median_us, b.speedup, b.roofline_pct, b.samples, b.stale, "
                        "b.published_at FROM best b LEFT JOIN kernel k USING(kernel_key) WHERE " +
                            of_run_tasks(1) + " ORDER BY b.op, b.problem_key, b.device_key",
                        {run_id})},
          {"misses", rows("SELECT problem_key, device_key, count, first_seen, last_seen FROM miss "
                          "ORDER BY count DESC, problem_key")}};
}

}  // namespace kforge::web
