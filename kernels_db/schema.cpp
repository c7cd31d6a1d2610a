// The kernel library's schema: every table and index, written as the numbered migrations that
// bring a file of any older version (0: new and empty) to KernelStore::kSchemaVersion.
#include "kernels_db/schema.hpp"

#include "kernels_db/kernels_db.hpp"
#include "kernels_db/sqlite.hpp"

namespace kforge::db {
namespace {

// Migration N (1-based) takes the schema from version N-1 to N, in one transaction. Never edit
// one that shipped: files in the field were made by it.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE kernel(
  kernel_key  TEXT PRIMARY KEY,      -- content hash of backend, source and params
  task        TEXT NOT NULL,         -- suite/name
  backend     TEXT NOT NULL,
  entry       TEXT NOT NULL,
  source      TEXT NOT NULL,
  params_json TEXT NOT NULL,
  origin      TEXT NOT NULL,
  created_at  TEXT NOT NULL);
CREATE TABLE evaluation(
  evaluation_id INTEGER PRIMARY KEY,
  kernel_key    TEXT NOT NULL REFERENCES kernel(kernel_key),
  device        TEXT NOT NULL,
  status        TEXT NOT NULL CHECK(status IN
                  ('ok','compile_error','incorrect','crash','timeout','runtime_error')),
  message       TEXT NOT NULL,
  log           TEXT NOT NULL,
  atol REAL NOT NULL, rtol REAL NOT NULL,
  seed          TEXT NOT NULL,       -- a u64, kept exact as text
  created_at    TEXT NOT NULL);
CREATE INDEX evaluation_by_kernel ON evaluation(kernel_key, evaluation_id);
CREATE TABLE measurement(
  evaluation_id INTEGER NOT NULL REFERENCES evaluation(evaluation_id),
  shape   TEXT NOT NULL,
  kind    TEXT NOT NULL CHECK(kind IN ('bench','check')),
  correct INTEGER NOT NULL,
  max_abs_error REAL, max_rel_error REAL,
  n INTEGER, min_us REAL, median_us REAL, p20_us REAL, p80_us REAL,
  mean_us REAL, std_us REAL, cv REAL, gbps REAL, gflops REAL,
  PRIMARY KEY(evaluation_id, shape));
)sql",
    // 2: the evaluator's rejected_cheat status. SQLite cannot change a CHECK in place: rebuild.
    R"sql(
CREATE TABLE evaluation_v2(
  evaluation_id INTEGER PRIMARY KEY,
  kernel_key    TEXT NOT NULL REFERENCES kernel(kernel_key),
  device        TEXT NOT NULL,
  status        TEXT NOT NULL CHECK(status IN
                  ('ok','compile_error','incorrect','crash','timeout','runtime_error','rejected_cheat')),
  message       TEXT NOT NULL,
  log           TEXT NOT NULL,
  atol REAL NOT NULL, rtol REAL NOT NULL,
  seed          TEXT NOT NULL,
  created_at    TEXT NOT NULL);
INSERT INTO evaluation_v2 SELECT * FROM evaluation;
DROP TABLE evaluation;
ALTER TABLE evaluation_v2 RENAME TO evaluation;
CREATE INDEX evaluation_by_kernel ON evaluation(kernel_key, evaluation_id);
)sql",
    // 3: the baseline timed beside the candidate, and the speedup over it.
    R"sql(
ALTER TABLE evaluation ADD COLUMN baseline TEXT NOT NULL DEFAULT '';
ALTER TABLE evaluation ADD COLUMN speedup REAL;
ALTER TABLE measurement ADD COLUMN baseline_median_us REAL;
ALTER TABLE measurement ADD COLUMN speedup REAL;
)sql",
    // 4: the full model: device, env, run, problem, best, miss, llm_call; kernel lineage;
    // evaluations under a natural key (so files merge), with their env, run and verified flag;
    // measurements tied to a problem, with the physics floor and % of roofline. Every older
    // kernel ran on a CPU ("cpu:<name>") under an env nobody wrote down.
    R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES('min_reader_version', '4');
CREATE TABLE device(
  device_key     TEXT PRIMARY KEY,   -- 'cpu:<model name>' or '<vendor>:<arch>:<units>'
  vendor         TEXT NOT NULL,
  arch           TEXT NOT NULL,
  units          INTEGER NOT NULL,   -- SMs or CUs; 0 for CPUs
  name           TEXT NOT NULL,
  memory_bytes   INTEGER,
  bandwidth_gbps REAL,               -- measured
  peak_gflops    REAL);
INSERT INTO device(device_key, vendor, arch, units, name)
  SELECT DISTINCT device, 'cpu', substr(device, 5), 0, substr(device, 5) FROM evaluation WHERE device LIKE 'cpu:%';
INSERT OR IGNORE INTO device(device_key, vendor, arch, units, name)
  SELECT DISTINCT device, device, device, 0, device FROM evaluation;
CREATE TABLE env(
  env_key        TEXT PRIMARY KEY,   -- hash of the fields; 'unknown' when none is known
  driver         TEXT NOT NULL,
  runtime        TEXT NOT NULL,
  compiler       TEXT NOT NULL,
  kforge_version TEXT NOT NULL);
INSERT INTO env VALUES('unknown', '', '', '', '');
CREATE TABLE run(
  run_id         TEXT PRIMARY KEY,   -- random; provenance of kernels and evaluations
  kforge_version TEXT NOT NULL,
  command        TEXT NOT NULL,
  seed           TEXT NOT NULL,
  llm_models     TEXT NOT NULL,
  host           TEXT NOT NULL,
  started_at     TEXT NOT NULL,
  ended_at       TEXT);
ALTER TABLE kernel ADD COLUMN parent_key TEXT NOT NULL DEFAULT '';  -- no FK: merges come in any order
ALTER TABLE kernel ADD COLUMN operator   TEXT NOT NULL DEFAULT '';
ALTER TABLE kernel ADD COLUMN run_id     TEXT NOT NULL DEFAULT '';
CREATE INDEX kernel_by_task ON kernel(task);

ALTER TABLE evaluation RENAME COLUMN device TO device_key;
ALTER TABLE evaluation ADD COLUMN evaluation_key TEXT;
ALTER TABLE evaluation ADD COLUMN env_key     TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE evaluation ADD COLUMN run_id      TEXT NOT NULL DEFAULT '';
ALTER TABLE evaluation ADD COLUMN output      TEXT NOT NULL DEFAULT '';
ALTER TABLE evaluation ADD COLUMN verified    INTEGER NOT NULL DEFAULT 0;
ALTER TABLE evaluation ADD COLUMN op_version  INTEGER NOT NULL DEFAULT 1;
ALTER TABLE evaluation ADD COLUMN dtype       TEXT NOT NULL DEFAULT 'f32';
ALTER TABLE evaluation ADD COLUMN dynamic_dim TEXT NOT NULL DEFAULT '';
UPDATE evaluation SET evaluation_key = kforge_hash(kernel_key, device_key, seed, created_at, evaluation_id);
UPDATE evaluation SET dynamic_dim = 'M' WHERE EXISTS(
  SELECT 1 FROM measurement m WHERE m.evaluation_id = evaluation.evaluation_id AND ',' || m.shape LIKE '%,M=%');
CREATE UNIQUE INDEX evaluation_by_key ON evaluation(evaluation_key);
CREATE INDEX evaluation_by_device ON evaluation(device_key, created_at);
CREATE INDEX evaluation_by_kernel_device ON evaluation(kernel_key, device_key, created_at);

CREATE TABLE problem(
  problem_key TEXT PRIMARY KEY,      -- 'llm/gemm_flat/v1/f32/K=4096,N=2048/M=8'
  op          TEXT NOT NULL,
  op_version  INTEGER NOT NULL,
  dtype       TEXT NOT NULL,
  static_key  TEXT NOT NULL,         -- the fixed dims, sorted by name
  dyn_name    TEXT NOT NULL,         -- the dim that varies at run time, '' for none
  dyn         INTEGER);
CREATE INDEX problem_family ON problem(op, op_version, dtype, static_key, dyn);
ALTER TABLE measurement ADD COLUMN problem_key  TEXT NOT NULL DEFAULT '';
ALTER TABLE measurement ADD COLUMN floor_us     REAL;
ALTER TABLE measurement ADD COLUMN roofline_pct REAL;
INSERT OR IGNORE INTO problem
  SELECT DISTINCT kforge_problem_key(k.task, e.op_version, e.dtype, m.shape, e.dynamic_dim), k.task, e.op_version,
         e.dtype, kforge_static_key(m.shape, e.dynamic_dim), e.dynamic_dim, kforge_dyn(m.shape, e.dynamic_dim)
  FROM measurement m JOIN evaluation e USING(evaluation_id) JOIN kernel k USING(kernel_key);
UPDATE measurement SET problem_key = (
  SELECT kforge_problem_key(k.task, e.op_version, e.dtype, measurement.shape, e.dynamic_dim)
  FROM evaluation e JOIN kernel k USING(kernel_key) WHERE e.evaluation_id = measurement.evaluation_id);
CREATE INDEX measurement_by_problem ON measurement(problem_key);

-- Published: per problem, device and env, the lowest median that counts (KernelStore::publish).
CREATE TABLE best(
  problem_key    TEXT NOT NULL,
  device_key     TEXT NOT NULL,
  env_key        TEXT NOT NULL,
  op TEXT NOT NULL, op_version INTEGER NOT NULL, dtype TEXT NOT NULL, static_key TEXT NOT NULL, dyn INTEGER,
  kernel_key     TEXT NOT NULL,
  evaluation_key TEXT NOT NULL,
  median_us      REAL NOT NULL,
  speedup        REAL,
  roofline_pct   REAL,
  samples        INTEGER NOT NULL,
  stale          INTEGER NOT NULL,   -- its env is no longer the device's newest
  published_at   TEXT NOT NULL,
  PRIMARY KEY(problem_key, device_key, env_key));
CREATE INDEX best_by_kernel ON best(kernel_key, device_key);
CREATE TABLE miss(
  problem_key TEXT NOT NULL,
  device_key  TEXT NOT NULL,
  count       INTEGER NOT NULL,
  first_seen  TEXT NOT NULL,
  last_seen   TEXT NOT NULL,
  PRIMARY KEY(problem_key, device_key));
CREATE TABLE llm_call(
  call_key          TEXT PRIMARY KEY,  -- hash of run, model, request, time
  run_id            TEXT NOT NULL,
  model             TEXT NOT NULL,
  endpoint          TEXT NOT NULL,
  request           TEXT NOT NULL,
  response          TEXT NOT NULL,
  prompt_tokens     INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  cost_usd          REAL NOT NULL,
  latency_ms        REAL NOT NULL,
  status            TEXT NOT NULL,
  created_at        TEXT NOT NULL);
)sql",
    // 5: what a search needs to replay its LLM calls and to resume after a kill.
    R"sql(
ALTER TABLE llm_call ADD COLUMN request_hash TEXT NOT NULL DEFAULT '';  -- of the conversation: replay's key
ALTER TABLE llm_call ADD COLUMN http_status  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE llm_call ADD COLUMN attempt      INTEGER NOT NULL DEFAULT 1;
ALTER TABLE llm_call ADD COLUMN error        TEXT NOT NULL DEFAULT '';
ALTER TABLE llm_call ADD COLUMN provider     TEXT NOT NULL DEFAULT '';  -- how to read the response: openai, anthropic
CREATE INDEX llm_call_by_run ON llm_call(run_id, created_at);
-- A search's state per task (population, RNG, counters; JSON), written in the same transaction
-- as each evaluation, and its options under task ''. Local to the file: never merged.
CREATE TABLE search_state(
  run_id     TEXT NOT NULL,
  task       TEXT NOT NULL,
  state      TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY(run_id, task));
)sql",
    // 6: what the compiler reported about an evaluated kernel's binary (NULL: unknown, as for
    // every kernel evaluated before and every cpu kernel's registers).
    R"sql(
ALTER TABLE evaluation ADD COLUMN registers    INTEGER;  -- per thread
ALTER TABLE evaluation ADD COLUMN spill_bytes  INTEGER;  -- spill stores + loads
ALTER TABLE evaluation ADD COLUMN shared_bytes INTEGER;  -- static shared memory per block
ALTER TABLE evaluation ADD COLUMN code_bytes   INTEGER;  -- the binary's size
)sql",
    // 7: which worker of a pool ran an evaluation, "<name>@<host>" ('': the run's one worker).
    R"sql(
ALTER TABLE evaluation ADD COLUMN worker TEXT NOT NULL DEFAULT '';
)sql",
};
constexpr int kMigrationCount = sizeof kMigrations / sizeof kMigrations[0];
static_assert(kMigrationCount == KernelStore::kSchemaVersion);

}  // namespace

int user_version(sqlite3* db) {
  return static_cast<int>(db::scalar(db, "PRAGMA user_version"));
}

Status migrate(sqlite3* db, int from) {
  for (int v = from; v < KernelStore::kSchemaVersion; ++v) {
    auto s = transaction(db, [&]() -> Status {
      if (user_version(db) != v) return {};  // another process migrated meanwhile
      if (auto m = exec(db, kMigrations[v]); !m) return m;
      // Migration 4 made `best`: an older file's evaluations earn their rows in it (a new file has none).
      if (v + 1 == 4 && from > 0)
        if (auto p = republish(db); !p) return p;
      return exec(db, fmt::format("PRAGMA user_version = {}", v + 1));
    });
    if (!s) return make_error(ErrorKind::database, "migration to schema {} failed: {}", v + 1, s.error().message);
  }
  return {};
}

}  // namespace kforge::db
