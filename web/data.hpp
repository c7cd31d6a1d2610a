// Internal to web: the JSON document of each page, read from the library. Each returns null when
// what it names is not in the library.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

struct sqlite3;

namespace kforge::web {

class Reader {
 public:
  explicit Reader(sqlite3* db);

  // index: every run (or only `run_id`), newest first, and the devices (or the run's)
  nlohmann::json runs(const std::string& run_id = "") const;
  nlohmann::json run(const std::string& run_id) const;  // a run's summary and its tasks
  nlohmann::json run_page(const std::string& run_id) const;  // ... with counts by status and LLM use
  nlohmann::json task(const std::string& run_id, const std::string& task) const;
  nlohmann::json kernel(const std::string& key) const;
  // With `run_id`: only the published kernels of that run's tasks.
  nlohmann::json device(const std::string& device_key, const std::string& run_id = "") const;
  nlohmann::json library(const std::string& run_id = "") const;

  // The rows of `sql` with ?1, ?2 ... bound to `args`, as objects keyed by column name. A SQL
  // error is a bug or a broken file: it throws.
  nlohmann::json rows(const std::string& sql, const std::vector<std::string>& args = {}) const;
  nlohmann::json row(const std::string& sql, const std::vector<std::string>& args = {}) const;

 private:
  sqlite3* db_;
};

}  // namespace kforge::web
