// Recording into the library: kernels with their evaluations and measurements (republishing the
// `best` rows they touch), devices, and misses.
#include <sqlite3.h>

#include <map>
#include <set>

#include "kernels_db/kernels_db.hpp"
#include "kernels_db/sqlite.hpp"

namespace kforge {
namespace {

using db::Statement;
using db::transaction;

Status insert_device(sqlite3* db, const DeviceRecord& d) {
  Statement st(db, R"sql(
INSERT INTO device(device_key, vendor, arch, units, name, memory_bytes, bandwidth_gbps, peak_gflops)
VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT(device_key) DO UPDATE SET
  memory_bytes = coalesce(excluded.memory_bytes, memory_bytes),
  bandwidth_gbps = coalesce(excluded.bandwidth_gbps, bandwidth_gbps),
  peak_gflops = coalesce(excluded.peak_gflops, peak_gflops))sql");
  st.bind(1, d.key).bind(2, d.vendor).bind(3, d.arch).bind_int(4, d.units).bind(5, d.name);
  if (d.memory_bytes > 0)
    st.bind_int(6, d.memory_bytes);
  else
    st.bind_null(6);
  st.bind_positive(7, d.bandwidth_gbps).bind_positive(8, d.peak_gflops);
  return st.step() == SQLITE_DONE ? Status() : Status(st.error());
}

Status insert_problem(sqlite3* db, const ProblemQuery& q) {
  Statement st(db, "INSERT OR IGNORE INTO problem VALUES(?,?,?,?,?,?,?)");
  st.bind(1, problem_key(q)).bind(2, q.op).bind_int(3, q.op_version).bind(4, q.dtype).bind(5, q.static_key);
  st.bind(6, q.dynamic_dim);
  if (q.dyn)
    st.bind_int(7, *q.dyn);
  else
    st.bind_null(7);
  return st.step() == SQLITE_DONE ? Status() : Status(st.error());
}

// A JSON string literal of `text` (for json_each parameters).
std::string sql_json_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20)
      out += fmt::format("\\u{:04x}", c);
    else
      out += c;
  }
  return out + "\"";
}

}  // namespace

Result<std::int64_t> KernelStore::record(const KernelRecord& kernel, const EvaluationRecord& evaluation,
                                         const SearchStateRecord* state) {
  auto ids = record_batch({{kernel, evaluation}}, state);
  if (!ids) return ids.error();
  return ids->front();
}

Result<std::vector<std::int64_t>> KernelStore::record_batch(
    const std::vector<std::pair<KernelRecord, EvaluationRecord>>& batch, const SearchStateRecord* state) {
  std::vector<std::int64_t> ids;
  const std::string now = db::now_utc();
  std::map<std::string, std::set<std::string>> touched;  // device -> problems to republish
  auto s = transaction(db_, [&]() -> Status {
    for (const auto& [kernel, evaluation] : batch) {
      Statement k(db_,
                  "INSERT OR IGNORE INTO kernel(kernel_key, task, backend, entry, source, params_json, origin, "
                  "created_at, parent_key, operator, run_id) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
      k.bind(1, kernel.key).bind(2, kernel.task).bind(3, kernel.backend).bind(4, kernel.entry);
      k.bind(5, kernel.source).bind(6, kernel.params_json).bind(7, kernel.origin).bind(8, now);
      k.bind(9, kernel.parent_key).bind(10, kernel.operator_name).bind(11, kernel.run_id);
      if (k.step() != SQLITE_DONE) return k.error();

      Statement device(db_, "SELECT 1 FROM device WHERE device_key = ?");
      device.bind(1, evaluation.device);
      DeviceRecord measured = parse_device_key(evaluation.device);
      measured.bandwidth_gbps = evaluation.device_gbps, measured.peak_gflops = evaluation.device_gflops;
      // A device seen for the first time, or its roof measured again (the probe keeps its best).
      if (device.step() != SQLITE_ROW || measured.bandwidth_gbps > 0 || measured.peak_gflops > 0)
        if (auto d = insert_device(db_, measured); !d) return d;
      const EnvRecord& env = evaluation.env;
      Statement en(db_, "INSERT OR IGNORE INTO env VALUES(?,?,?,?,?)");
      en.bind(1, env.key()).bind(2, env.driver).bind(3, env.runtime).bind(4, env.compiler).bind(5, env.kforge_version);
      if (en.step() != SQLITE_DONE) return en.error();

      const std::string seed = std::to_string(evaluation.seed);
      const std::string key =
          evaluation.key.empty()
              ? content_hash(kernel.key + "\n" + evaluation.device + "\n" + seed + "\n" + now + "\n" + db::random_hex())
              : evaluation.key;
      Statement e(db_,
                  "INSERT INTO evaluation(kernel_key, device_key, status, message, log, atol, rtol, seed, created_at, "
                  "baseline, speedup, evaluation_key, env_key, run_id, output, verified, op_version, dtype, "
                  "dynamic_dim, registers, spill_bytes, shared_bytes, code_bytes, worker) "
                  "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
      e.bind(1, kernel.key).bind(2, evaluation.device).bind(3, evaluation.status).bind(4, evaluation.message);
      e.bind(5, evaluation.log).bind(6, evaluation.atol).bind(7, evaluation.rtol);
      e.bind(8, seed).bind(9, now).bind(10, evaluation.baseline).bind_positive(11, evaluation.speedup);
      e.bind(12, key).bind(13, env.key()).bind(14, evaluation.run_id).bind(15, evaluation.output);
      e.bind_int(16, evaluation.verified).bind_int(17, evaluation.op_version).bind(18, evaluation.dtype);
      e.bind(19, evaluation.dynamic_dim).bind_count(20, evaluation.registers).bind_count(21, evaluation.spill_bytes);
      e.bind_count(22, evaluation.shared_bytes).bind_count(23, evaluation.code_bytes > 0 ? evaluation.code_bytes : -1);
      e.bind(24, evaluation.worker);
      if (e.step() != SQLITE_DONE) return e.error();
      const std::int64_t evaluation_id = sqlite3_last_insert_rowid(db_);
      ids.push_back(evaluation_id);

      Statement st(db_,
                   "INSERT INTO measurement(evaluation_id, shape, kind, correct, max_abs_error, max_rel_error, n, "
                   "min_us, median_us, p20_us, p80_us, mean_us, std_us, cv, gbps, gflops, baseline_median_us, speedup, "
                   "problem_key, floor_us, roofline_pct) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
      for (const auto& m : evaluation.measurements) {
        const ProblemQuery problem =
            problem_query(kernel.task, evaluation.dtype, m.shape, evaluation.dynamic_dim, evaluation.op_version);
        if (auto p = insert_problem(db_, problem); !p) return p;
        st.reset();
        st.bind_int(1, evaluation_id).bind(2, m.shape).bind(3, std::string(m.bench ? "bench" : "check"));
        st.bind_int(4, m.correct).bind(5, m.max_abs_error).bind(6, m.max_rel_error);
        if (m.n) {
          st.bind_int(7, *m.n).bind(8, m.min_us).bind(9, m.median_us).bind(10, m.p20_us).bind(11, m.p80_us);
          st.bind(12, m.mean_us).bind(13, m.std_us).bind(14, m.cv).bind(15, m.gbps).bind(16, m.gflops);
        }
        if (m.speedup > 0) st.bind(17, m.baseline_median_us).bind(18, m.speedup);
        st.bind(19, problem_key(problem)).bind_positive(20, m.floor_us).bind_positive(21, m.roofline_pct);
        if (st.step() != SQLITE_DONE) return st.error();
      }
      // Republish what this evaluation can change: its problems on its device, and every problem
      // the kernel is published for there (a failed evaluation withdraws it).
      std::set<std::string>& problems = touched[evaluation.device];
      Statement published(db_, "SELECT problem_key FROM best WHERE kernel_key = ? AND device_key = ?");
      published.bind(1, kernel.key).bind(2, evaluation.device);
      while (published.step() == SQLITE_ROW) problems.insert(published.text(0));
      for (const auto& m : evaluation.measurements)
        problems.insert(problem_key(
            problem_query(kernel.task, evaluation.dtype, m.shape, evaluation.dynamic_dim, evaluation.op_version)));
    }
    if (state) {
      Statement st(db_, "INSERT OR REPLACE INTO search_state VALUES(?,?,?,?)");
      st.bind(1, state->run_id).bind(2, state->task).bind(3, state->state).bind(4, now);
      if (st.step() != SQLITE_DONE) return st.error();
    }
    for (const auto& [device, problems] : touched) {
      std::string json = "[";
      for (const auto& k : problems) json += (json.size() > 1 ? "," : "") + sql_json_string(k);
      if (auto p = db::republish(db_, device, json + "]"); !p) return p;
    }
    return Status();
  });
  if (!s) return make_error(ErrorKind::database, "{}: cannot record the evaluation: {}", path_, s.error().message);
  return ids;
}

Status KernelStore::record_device(const DeviceRecord& device) {
  if (auto s = insert_device(db_, device); !s)
    return make_error(ErrorKind::database, "{}: cannot record the device: {}", path_, s.error().message);
  return {};
}

Status KernelStore::record_miss(const ProblemQuery& query, const std::string& device_key, std::int64_t count) {
  const std::string now = db::now_utc();
  auto s = transaction(db_, [&]() -> Status {
    if (auto p = insert_problem(db_, query); !p) return p;
    Statement st(db_, R"sql(
INSERT INTO miss VALUES(?1, ?2, ?3, ?4, ?4)
ON CONFLICT(problem_key, device_key) DO UPDATE SET count = count + excluded.count, last_seen = excluded.last_seen)sql");
    st.bind(1, problem_key(query)).bind(2, device_key).bind_int(3, count).bind(4, now);
    return st.step() == SQLITE_DONE ? Status() : Status(st.error());
  });
  if (!s) return make_error(ErrorKind::database, "{}: cannot record the miss: {}", path_, s.error().message);
  return {};
}

}  // namespace kforge
