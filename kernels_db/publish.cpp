// The publication rule: which measurements earn the row of their problem in `best`, recomputed
// after every write, import and gc, and once by the migration that made the table.
#include <sqlite3.h>

#include "kernels_db/kernels_db.hpp"
#include "kernels_db/sqlite.hpp"

namespace kforge {
namespace db {

// Recomputes `best` inside the caller's transaction. A measurement counts when its evaluation is
// ok and re-verified (flagged by the evaluator, or an independent ok evaluation of the same
// kernel on the same device and env with another seed exists), the shape was correct and timed
// with enough samples, and no later evaluation of the kernel on that device found it wrong.
// Per problem, device and env the lowest median wins; rows whose env is not the one of the
// device's newest evaluation are flagged stale.
Status republish(sqlite3* db, const std::string& device_key, const std::string& problems_json) {
  const bool all = device_key.empty();
  // ?3 = 1: everything; else only device ?4 and the problems in the JSON array ?5. Two texts, so
  // the scoped one can use the indexes.
  const std::string scope = all ? "?3 AND ?4 = ?4 AND ?5 = ?5"
                                : "?3 = 0 AND device_key = ?4 AND problem_key IN (SELECT value FROM json_each(?5))";
  Statement clear(db, fmt::format("DELETE FROM best WHERE {}", scope));
  clear.bind_int(3, all).bind(4, device_key).bind(5, problems_json);
  if (clear.step() != SQLITE_DONE) return clear.error();
  Statement st(
      db, fmt::format(
              R"sql(
INSERT INTO best(problem_key, device_key, env_key, op, op_version, dtype, static_key, dyn, kernel_key,
                 evaluation_key, median_us, speedup, roofline_pct, samples, stale, published_at)
SELECT problem_key, device_key, env_key, op, op_version, dtype, static_key, dyn, kernel_key, evaluation_key,
       median_us, speedup, roofline_pct, n, 0, ?1 FROM (
  SELECT m.problem_key, e.device_key, e.env_key, p.op, p.op_version, p.dtype, p.static_key, p.dyn, e.kernel_key,
         e.evaluation_key, m.median_us, m.speedup, m.roofline_pct, m.n,
         row_number() OVER (PARTITION BY m.problem_key, e.device_key, e.env_key
                            ORDER BY m.median_us, e.kernel_key, e.evaluation_key) AS rank
  FROM measurement m JOIN evaluation e USING(evaluation_id) JOIN problem p USING(problem_key)
  WHERE e.status = 'ok' AND m.correct AND m.n >= ?2 AND m.median_us > 0
    AND {}
    AND (e.verified OR EXISTS(SELECT 1 FROM evaluation r WHERE r.kernel_key = e.kernel_key
           AND r.device_key = e.device_key AND r.env_key = e.env_key AND r.status = 'ok' AND r.seed <> e.seed))
    AND NOT EXISTS(SELECT 1 FROM evaluation f WHERE f.kernel_key = e.kernel_key AND f.device_key = e.device_key
           AND f.status IN ('incorrect', 'crash', 'runtime_error', 'rejected_cheat')
           AND (f.created_at > e.created_at OR (f.created_at = e.created_at AND f.evaluation_id > e.evaluation_id))))
WHERE rank = 1)sql",
              all ? scope : "?3 = 0 AND +e.device_key = ?4 AND m.problem_key IN (SELECT value FROM json_each(?5))"));
  st.bind(1, db::now_utc()).bind_int(2, KernelStore::kMinPublishSamples);
  st.bind_int(3, all).bind(4, device_key).bind(5, problems_json);
  if (st.step() != SQLITE_DONE) return st.error();
  if (all)
    return exec(db, R"sql(
UPDATE best SET stale = env_key <> (SELECT e.env_key FROM evaluation e WHERE e.device_key = best.device_key
                                    ORDER BY e.created_at DESC, e.evaluation_id DESC LIMIT 1))sql");
  Statement newest(
      db, "SELECT env_key FROM evaluation WHERE device_key = ? ORDER BY created_at DESC, evaluation_id DESC LIMIT 1");
  newest.bind(1, device_key);
  if (newest.step() != SQLITE_ROW) return {};
  Statement stale(db, "UPDATE best SET stale = env_key <> ?1 WHERE device_key = ?2 AND stale <> (env_key <> ?1)");
  stale.bind(1, newest.text(0)).bind(2, device_key);
  return stale.step() == SQLITE_DONE ? Status() : Status(stale.error());
}

}  // namespace db

Status KernelStore::publish() {
  if (auto s = db::transaction(db_, [&] { return db::republish(db_); }); !s)
    return make_error(ErrorKind::database, "{}: cannot publish: {}", path_, s.error().message);
  return {};
}

}  // namespace kforge
