// A run in the library: its provenance row, its LLM calls (what a replay answers from) and its
// search state per task (what a resume starts from).
#include <sqlite3.h>

#include "kernels_db/kernels_db.hpp"
#include "kernels_db/sqlite.hpp"

namespace kforge {
namespace {

using db::Statement;

}  // namespace

Status KernelStore::record_run(const RunRecord& run) {
  Statement st(db_, "INSERT OR IGNORE INTO run VALUES(?,?,?,?,?,?,?,NULL)");
  st.bind(1, run.id).bind(2, run.kforge_version).bind(3, run.command).bind(4, run.seed).bind(5, run.llm_models);
  st.bind(6, run.host).bind(7, run.started_at.empty() ? db::now_utc() : run.started_at);
  if (st.step() != SQLITE_DONE)
    return make_error(ErrorKind::database, "{}: cannot record the run: {}", path_, st.error().message);
  return {};
}

Status KernelStore::end_run(const std::string& run_id) {
  Statement st(db_, "UPDATE run SET ended_at = ? WHERE run_id = ?");
  st.bind(1, db::now_utc()).bind(2, run_id);
  if (st.step() != SQLITE_DONE)
    return make_error(ErrorKind::database, "{}: cannot end the run: {}", path_, st.error().message);
  return {};
}

Status KernelStore::record_llm_call(const LlmCallRecord& c) {
  const std::string at = c.created_at.empty() ? db::now_utc() : c.created_at;
  Statement st(db_,
               "INSERT OR IGNORE INTO llm_call(call_key, run_id, model, endpoint, request, response, prompt_tokens, "
               "completion_tokens, cost_usd, latency_ms, status, created_at, request_hash, http_status, attempt, error, "
               "provider) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  // A natural key, so that merging libraries never duplicates a call: two attempts of one request
  // differ by their number, two samples of one prompt by their reply.
  st.bind(1, content_hash(fmt::format("{}\n{}\n{}\n{}\n{}\n{}", c.run_id, c.model, at, c.request, c.attempt,
                                      c.response)));
  st.bind(2, c.run_id).bind(3, c.model).bind(4, c.endpoint).bind(5, c.request).bind(6, c.response);
  st.bind_int(7, c.prompt_tokens).bind_int(8, c.completion_tokens).bind(9, c.cost_usd).bind(10, c.latency_ms);
  st.bind(11, c.status).bind(12, at).bind(13, c.request_hash).bind_int(14, c.http_status).bind_int(15, c.attempt);
  st.bind(16, c.error).bind(17, c.provider);
  if (st.step() != SQLITE_DONE)
    return make_error(ErrorKind::database, "{}: cannot record the LLM call: {}", path_, st.error().message);
  return {};
}

Result<std::vector<LlmCallRecord>> KernelStore::llm_calls(const std::string& run_id) const {
  Statement st(db_,
               "SELECT run_id, model, endpoint, request, response, status, prompt_tokens, completion_tokens, cost_usd, "
               "latency_ms, created_at, request_hash, http_status, attempt, error, provider FROM llm_call WHERE run_id = ? "
               "ORDER BY created_at, rowid");
  st.bind(1, run_id);
  std::vector<LlmCallRecord> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    LlmCallRecord c;
    c.run_id = st.text(0), c.model = st.text(1), c.endpoint = st.text(2), c.request = st.text(3);
    c.response = st.text(4), c.status = st.text(5);
    c.prompt_tokens = st.integer(6), c.completion_tokens = st.integer(7);
    c.cost_usd = st.real(8), c.latency_ms = st.real(9), c.created_at = st.text(10), c.request_hash = st.text(11);
    c.http_status = static_cast<int>(st.integer(12)), c.attempt = static_cast<int>(st.integer(13));
    c.error = st.text(14), c.provider = st.text(15);
    out.push_back(std::move(c));
  }
  if (rc != SQLITE_DONE) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  return out;
}

Status KernelStore::save_search_state(const std::string& run_id, const std::string& task, const std::string& state) {
  Statement st(db_, "INSERT OR REPLACE INTO search_state VALUES(?,?,?,?)");
  st.bind(1, run_id).bind(2, task).bind(3, state).bind(4, db::now_utc());
  if (st.step() != SQLITE_DONE)
    return make_error(ErrorKind::database, "{}: cannot save the search state: {}", path_, st.error().message);
  return {};
}

Result<std::map<std::string, std::string>> KernelStore::search_states(const std::string& run_id) const {
  Statement st(db_, "SELECT task, state FROM search_state WHERE run_id = ?");
  st.bind(1, run_id);
  std::map<std::string, std::string> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) out[st.text(0)] = st.text(1);
  if (rc != SQLITE_DONE) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  return out;
}

Result<std::vector<RunRecord>> KernelStore::runs() const {
  Statement st(db_,
               "SELECT run_id, kforge_version, command, seed, llm_models, host, started_at, coalesce(ended_at, '') "
               "FROM run ORDER BY started_at, rowid");
  std::vector<RunRecord> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    RunRecord r;
    r.id = st.text(0), r.kforge_version = st.text(1), r.command = st.text(2), r.seed = st.text(3);
    r.llm_models = st.text(4), r.host = st.text(5), r.started_at = st.text(6), r.ended_at = st.text(7);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return make_error(ErrorKind::database, "{}: {}", path_, st.error().message);
  return out;
}

}  // namespace kforge
