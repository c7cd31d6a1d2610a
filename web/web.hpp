// web: the pages of `kforge serve` (an HTTP server over a live kernel library) and `kforge report`
// (the same pages written as static files).
//
// A Site reads one library through read-only connections (SQLite URI mode=ro), so it can watch a
// search that is writing the file in WAL mode and can never change it. Every page is built from
// the JSON document that /api/ serves under the same name, so the pages and the API show the same
// data: runs (index.html), a run (run-ID.html), a task in a run (task-RUN-TASK.html: best-so-far
// curve, every evaluation by status, the lineage tree, each island's MAP-Elites grid), a kernel
// (kernel-KEY.html: source, diff against its parent, evaluations, compiler output, the LLM call
// that made it), a device (device-KEY.html: roofline) and the library (library.html: `best`,
// misses). A long table (a task's evaluations, the runs, `best`, a kernel's evaluations, a device's
// kernels) comes a page at a time: NAME.html with the charts over every row and the first rows,
// then NAME-p2.html ...; api/NAME.json holds every row. Charts are SVG drawn here; the only script is highlight.js from its Debian package plus
// a few lines of ours. Everything the library holds is untrusted text and is escaped.
// File names are flat and links relative, so the static copy browses like the server.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/common.hpp"

namespace kforge::web {

struct Response {
  int status = 200;
  std::string content_type;
  std::string body;
  int pages = 1;  // how many pages the document's HTML takes (NAME.html, NAME-p2.html, ...)
};

class Site {
 public:
  // Opens `db_path` read-only; one line saying why when it is missing, not a kforge library, or
  // of another schema version. With `run_id`, the site is that run's: the runs page lists it alone.
  static Result<Site> open(const std::string& db_path, const std::string& run_id = "");

  // The page "NAME.html" (its further pages "NAME-pN.html") or the document "api/NAME.json"; a 404
  // page for anything else. `live` pages of an unfinished run reload themselves every few seconds.
  // With `written` (page names without .html), a link to any other page is drawn as text.
  Response get(const std::string& path, bool live = false, const std::set<std::string>* written = nullptr) const;

  // The names of the site's documents (their first pages): the runs, library and device pages,
  // each run's and task's, and the kernels; for one run's site, its kernels, their parents, the
  // kernels published for its tasks and the devices it ran on.
  Result<std::vector<std::string>> page_names() const;

  Site(Site&&) noexcept;
  ~Site();

 private:
  struct Db;
  explicit Site(std::unique_ptr<Db> db);
  std::unique_ptr<Db> db_;
  std::unique_ptr<std::mutex> mutex_;  // one connection, one page at a time
};

// A file name's piece for a key that may hold any character ("cpu:AMD EPYC" -> "cpu_3AAMD_20EPYC"),
// and back.
std::string encode_name(const std::string& key);
std::string decode_name(const std::string& name);

// Serves `site` on host:port (port 0: any free one) until the process is stopped; GET and HEAD
// only, any other method is answered 405. `on_listening` gets the bound port.
Status serve(const Site& site, const std::string& host, int port, const std::function<void(int)>& on_listening);

// Writes every page of the site, its JSON under api/, and the scripts into `out_dir`; a page links
// only to pages written. Returns the number of HTML files written.
Result<int> write_report(const Site& site, const std::string& out_dir);

}  // namespace kforge::web
