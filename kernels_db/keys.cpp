// The natural keys rows are stored under (kernel, device, env, run, problem): the same on every
// machine, so that libraries merge without duplicates; and the SQL functions that compute them
// inside migrations and merges.
#include <sqlite3.h>

#include <algorithm>
#include <cstdlib>
#include <random>

#include "kernels_db/kernels_db.hpp"
#include "kernels_db/sqlite.hpp"

namespace kforge {
namespace {

// Dims of a shape label, "K=4096,M=8" → {{"K",4096},{"M",8}}; malformed pieces are skipped.
std::vector<std::pair<std::string, std::int64_t>> parse_shape(const std::string& shape) {
  std::vector<std::pair<std::string, std::int64_t>> dims;
  std::size_t start = 0;
  while (start < shape.size()) {
    std::size_t end = shape.find(',', start);
    if (end == std::string::npos) end = shape.size();
    const std::string piece = shape.substr(start, end - start);
    if (auto eq = piece.find('='); eq != std::string::npos)
      dims.emplace_back(piece.substr(0, eq), std::strtoll(piece.c_str() + eq + 1, nullptr, 10));
    start = end + 1;
  }
  std::sort(dims.begin(), dims.end());
  return dims;
}

// The kforge_* SQL functions (db::register_functions): the keys below, of a row's columns.
void sql_hash(sqlite3_context* context, int argc, sqlite3_value** argv) {
  std::string joined;
  for (int i = 0; i < argc; ++i) {
    if (i) joined += '\n';
    if (auto* t = sqlite3_value_text(argv[i])) joined += reinterpret_cast<const char*>(t);
  }
  const std::string hash = content_hash(joined);
  sqlite3_result_text(context, hash.c_str(), -1, SQLITE_TRANSIENT);
}

std::string value_text(sqlite3_value* v) {
  auto* t = sqlite3_value_text(v);
  return t ? reinterpret_cast<const char*>(t) : "";
}

void sql_problem_key(sqlite3_context* context, int, sqlite3_value** argv) {
  const std::string key = problem_key(problem_query(value_text(argv[0]), value_text(argv[2]), value_text(argv[3]),
                                                    value_text(argv[4]), sqlite3_value_int(argv[1])));
  sqlite3_result_text(context, key.c_str(), -1, SQLITE_TRANSIENT);
}

void sql_static_key(sqlite3_context* context, int, sqlite3_value** argv) {
  const std::string key = problem_query("", "", value_text(argv[0]), value_text(argv[1])).static_key;
  sqlite3_result_text(context, key.c_str(), -1, SQLITE_TRANSIENT);
}

void sql_dyn(sqlite3_context* context, int, sqlite3_value** argv) {
  const auto dyn = problem_query("", "", value_text(argv[0]), value_text(argv[1])).dyn;
  if (dyn)
    sqlite3_result_int64(context, *dyn);
  else
    sqlite3_result_null(context);
}

}  // namespace

namespace db {

std::string random_hex() {
  std::random_device device;
  return fmt::format("{:08x}{:08x}", device(), device());
}

void register_functions(sqlite3* db) {
  const int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC;
  sqlite3_create_function(db, "kforge_hash", -1, flags, nullptr, sql_hash, nullptr, nullptr);
  sqlite3_create_function(db, "kforge_problem_key", 5, flags, nullptr, sql_problem_key, nullptr, nullptr);
  sqlite3_create_function(db, "kforge_static_key", 2, flags, nullptr, sql_static_key, nullptr, nullptr);
  sqlite3_create_function(db, "kforge_dyn", 2, flags, nullptr, sql_dyn, nullptr, nullptr);
}

}  // namespace db

std::string kernel_key(const std::string& task, const std::string& backend, const std::string& params_json,
                       const std::string& source) {
  return content_hash(task + "\n" + backend + "\n" + params_json + "\n" + source);
}

DeviceRecord parse_device_key(const std::string& key) {
  DeviceRecord d;
  d.key = key;
  if (key.rfind("cpu:", 0) == 0) {
    d.vendor = "cpu";
    d.arch = d.name = key.substr(4);
    return d;
  }
  const auto first = key.find(':'), last = key.rfind(':');
  if (first != std::string::npos && last != first) {
    d.vendor = key.substr(0, first);
    d.arch = key.substr(first + 1, last - first - 1);
    d.units = std::atoi(key.c_str() + last + 1);
  } else {
    d.vendor = d.arch = key;
  }
  d.name = key;
  return d;
}

std::string EnvRecord::key() const {
  if (driver.empty() && runtime.empty() && compiler.empty() && kforge_version.empty()) return "unknown";
  return content_hash(driver + "\n" + runtime + "\n" + compiler + "\n" + kforge_version);
}

std::string new_run_id() {
  return db::now_utc().substr(0, 10) + "-" + db::random_hex();
}

ProblemQuery problem_query(const std::string& op, const std::string& dtype, const std::string& shape,
                           const std::string& dynamic_dim, int op_version) {
  ProblemQuery q;
  q.op = op;
  q.op_version = op_version;
  q.dtype = dtype;
  q.dynamic_dim = dynamic_dim;
  for (const auto& [name, value] : parse_shape(shape)) {
    if (name == dynamic_dim) {
      q.dyn = value;
      continue;
    }
    if (!q.static_key.empty()) q.static_key += ',';
    q.static_key += fmt::format("{}={}", name, value);
  }
  return q;
}

std::string problem_key(const ProblemQuery& q) {
  std::string key = fmt::format("{}/v{}/{}/{}", q.op, q.op_version, q.dtype, q.static_key);
  if (q.dyn) key += fmt::format("/{}={}", q.dynamic_dim.empty() ? "dyn" : q.dynamic_dim, *q.dyn);
  return key;
}

}  // namespace kforge
