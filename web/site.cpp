// Site: page names to documents and pages, the read-only connection, the HTTP server and the
// static report.
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <httplib.h>
#include <sstream>

#include "kernels_db/kernels_db.hpp"
#include "web/data.hpp"
#include "web/pages.hpp"
#include "web/web.hpp"

namespace kforge::web {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Where Debian's libjs-highlight.js installs itself; served under static/.
const std::string kHighlightDir = "/usr/share/javascript/highlight.js/";

// Ours: errors and console errors written into the page (the browser tests read them), then the
// sources highlighted once highlight.js (loaded at the end of the body) is there.
const char* const kScript = R"js(// kforge pages: script errors shown in the page, and source highlighting.
(function () {
  function show(kind, text) {
    var p = document.createElement('pre');
    p.className = 'js-error';
    p.textContent = kind + ': ' + text;
    (document.body || document.documentElement).appendChild(p);
  }
  window.addEventListener('error', function (e) { show('error', e.message); });
  var consoleError = console.error;
  console.error = function () {
    show('console.error', Array.prototype.join.call(arguments, ' '));
    consoleError.apply(console, arguments);
  };
  document.addEventListener('DOMContentLoaded', function () {
    var blocks = document.querySelectorAll('code.source');
    if (blocks.length && window.hljs) {
      blocks.forEach(function (b) { (hljs.highlightElement || hljs.highlightBlock).call(hljs, b); });
      document.documentElement.setAttribute('data-highlighted', String(blocks.length));
    }
    document.documentElement.setAttribute('data-kforge-ready', '1');
  });
})();
)js";

const char* const kStyle = R"css(body { font: 14px/1.4 sans-serif; margin: 1em 2em; color: #222; }
nav { margin-bottom: .5em; } table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; } dd { margin: 0; }
pre { background: #f6f6f6; padding: 6px; overflow: auto; max-height: 40em; }
pre.reply, pre.prompt { white-space: pre-wrap; } .scroll { overflow: auto; max-width: 100%; }
.diff .add { background: #e6ffec; } .diff .del { background: #ffebe9; } .diff .ctx { color: #666; }
.axis { stroke: #444; } .gridline { stroke: #e4e4e4; } .tick { font-size: 11px; fill: #444; }
.best { fill: none; stroke: #1f5fbf; stroke-width: 2; } .edge { stroke: #aaa; } .op { font-size: 10px; fill: #555; }
.roof { fill: none; stroke: #c33; stroke-width: 2; } .roof-point { fill: #1f5fbf; }
.grids { display: flex; flex-wrap: wrap; gap: 1em; } .grid td { width: 3.2em; height: 1.6em; font-size: 11px; }
.legend .dot { display: inline-block; width: .8em; height: .8em; border-radius: 50%; margin: 0 3px 0 8px; }
.s-ok { fill: #2a9d3a; background: #2a9d3a; } .s-incorrect { fill: #e07b00; background: #e07b00; }
.s-compile_error { fill: #d62728; background: #d62728; } .s-crash { fill: #8e44ad; background: #8e44ad; }
.s-timeout { fill: #888; background: #888; } .s-runtime_error { fill: #8c564b; background: #8c564b; }
.s-rejected_cheat { fill: #000; background: #000; } span.st { color: #fff; padding: 0 4px; border-radius: 3px; }
.js-error { color: #fff; background: #c00; } .pager .off { color: #999; } .absent { color: #555; }
)css";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return in ? s.str() : "";
}

bool highlight_installed() {
  static const bool installed = fs::exists(kHighlightDir + "highlight.min.js") && fs::exists(kHighlightDir + "styles/default.css");
  return installed;
}

// The static files every page loads: ours, and highlight.js from its package.
std::optional<Response> static_file(const std::string& name) {
  if (name == "kforge.js") return Response{200, "text/javascript; charset=utf-8", kScript};
  if (name == "kforge.css") return Response{200, "text/css; charset=utf-8", kStyle};
  const std::string file = name == "highlight.min.js" ? "highlight.min.js" : name == "highlight.css" ? "styles/default.css" : "";
  if (file.empty()) return std::nullopt;
  std::string body = read_file(kHighlightDir + file);
  if (body.empty()) return std::nullopt;
  return Response{200, name.ends_with(".js") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8", body};
}

// Rows of a long table per page: a page stays a few hundred KiB beside its charts.
constexpr std::size_t kRowsPerPage = 200;
constexpr std::size_t kEvaluationsPerKernelPage = 50;  // each with its measurements and logs

struct Document {
  std::string title;
  json data;
  std::string (*render)(const json&, const View&);
  bool live = false;             // a page of a run still being written
  const char* rows = nullptr;    // the array of data shown a page at a time
  std::size_t per_page = kRowsPerPage;

  int pages() const {
    const std::size_t n = rows && data.contains(rows) ? data[rows].size() : 0;
    return std::max<int>(1, static_cast<int>((n + per_page - 1) / per_page));
  }
};

// The document a page name stands for; data null when the library has no such thing.
std::optional<Document> document(const Reader& reader, const std::string& name, const std::string& only_run) {
  auto after = [&](const char* prefix) -> std::optional<std::string> {
    return name.rfind(prefix, 0) == 0 ? std::optional(name.substr(std::string(prefix).size())) : std::nullopt;
  };
  if (name == "index") {
    json runs = reader.runs(only_run);
    bool live = false;
    for (const auto& r : runs["runs"]) live |= r["status"] == "running";
    return Document{"kforge runs", runs, index_html, live, "runs"};
  }
  if (name == "library") return Document{"the kernel library", reader.library(only_run), library_html, false, "best"};
  if (auto id = after("run-")) {
    json r = reader.run_page(decode_name(*id));
    const bool live = !r.is_null() && r["status"] == "running";
    return Document{"run " + decode_name(*id), r, run_html, live};
  }
  if (auto rest = after("task-")) {
    const auto dash = rest->find('-');
    if (dash == std::string::npos) return std::nullopt;
    const std::string run_id = decode_name(rest->substr(0, dash)), task = decode_name(rest->substr(dash + 1));
    json t = reader.task(run_id, task);
    const bool live = !t.is_null() && !t["ended"].get<bool>();
    return Document{task + " in run " + run_id, t, task_html, live, "evaluations"};
  }
  if (auto key = after("kernel-")) {
    json k = reader.kernel(decode_name(*key));
    return Document{k.is_null() ? "" : "kernel " + k["origin"].get<std::string>() + " (" + k["task"].get<std::string>() + ")",
                    k, kernel_html, false, "evaluations", kEvaluationsPerKernelPage};
  }
  if (auto key = after("device-"))
    return Document{"device " + decode_name(*key), reader.device(decode_name(*key), only_run), device_html, false, "kernels"};
  return std::nullopt;
}

Response not_found(const std::string& path) {
  return {404, "text/html; charset=utf-8", not_found_html("nothing at " + path + " in this library", highlight_installed())};
}

// "task-R-T-p3" -> {"task-R-T", 3}. Encoded keys hold no '-', so a trailing "-pN" is a page number;
// the first page has no suffix ("-p1" names nothing).
std::pair<std::string, int> split_page(const std::string& name) {
  const auto dash = name.rfind("-p");
  if (dash == std::string::npos || dash + 2 == name.size()) return {name, 1};
  const std::string digits = name.substr(dash + 2);
  if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return {name, 1};
  const int page = std::stoi(digits);
  return page >= 2 ? std::pair(name.substr(0, dash), page) : std::pair(name, 1);
}

}  // namespace

std::string encode_name(const std::string& key) {
  std::string out;
  for (unsigned char c : key)
    if (std::isalnum(c) || c == '.') out += static_cast<char>(c);
    else out += fmt::format("_{:02X}", c);
  return out;
}

std::string decode_name(const std::string& name) {
  std::string out;
  for (std::size_t i = 0; i < name.size(); ++i)
    if (name[i] == '_' && i + 2 < name.size() && std::isxdigit(name[i + 1]) && std::isxdigit(name[i + 2]))
      out += static_cast<char>(std::stoi(name.substr(i + 1, 2), nullptr, 16)), i += 2;
    else out += name[i];
  return out;
}

struct Site::Db {
  sqlite3* db = nullptr;
  std::string run_id;  // the one run shown, or empty
  ~Db() { sqlite3_close(db); }
};

Site::Site(std::unique_ptr<Db> db) : db_(std::move(db)), mutex_(std::make_unique<std::mutex>()) {}
Site::Site(Site&&) noexcept = default;
Site::~Site() = default;

Result<Site> Site::open(const std::string& db_path, const std::string& run_id) {
  // The library's own checks first: missing, not a library, corrupt, another schema version.
  if (auto store = KernelStore::open(db_path, /*read_only=*/true); !store) return store.error();
  std::string uri = "file:";
  for (char c : fs::absolute(db_path).string())
    if (c == '%' || c == '?' || c == '#') uri += fmt::format("%{:02x}", c);
    else uri += c;
  auto db = std::make_unique<Db>();
  if (sqlite3_open_v2((uri + "?mode=ro").c_str(), &db->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) != SQLITE_OK)
    return make_error(ErrorKind::io, "{}: cannot open the kernel library read-only: {}", db_path,
                      db->db ? sqlite3_errmsg(db->db) : "out of memory");
  sqlite3_busy_timeout(db->db, 5000);
  db->run_id = run_id;
  Site site(std::move(db));
  if (!run_id.empty()) {
    auto names = site.page_names();  // says when there is no such run
    if (!names) return names.error();
  }
  return site;
}

Response Site::get(const std::string& path, bool live, const std::set<std::string>* written) const {
  std::string name = path;
  while (!name.empty() && name.front() == '/') name.erase(0, 1);
  if (name.empty()) name = "index.html";
  if (name.rfind("static/", 0) == 0) {
    auto file = static_file(name.substr(7));
    return file ? *file : not_found(path);
  }
  const bool api = name.rfind("api/", 0) == 0 && name.ends_with(".json");
  if (!api && !name.ends_with(".html")) return not_found(path);
  name = api ? name.substr(4, name.size() - 9) : name.substr(0, name.size() - 5);
  // A page's JSON is the whole document: only its HTML comes in pages.
  const auto [base, page] = api ? std::pair(name, 1) : split_page(name);

  std::lock_guard lock(*mutex_);
  Reader reader(db_->db);
  // One read transaction: a consistent snapshot while a search writes.
  sqlite3_exec(db_->db, "BEGIN", nullptr, nullptr, nullptr);
  std::optional<Document> doc;
  std::string failure;
  try {
    doc = document(reader, base, db_->run_id);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  sqlite3_exec(db_->db, "COMMIT", nullptr, nullptr, nullptr);
  if (!failure.empty())
    return {500, "text/plain; charset=utf-8", fmt::format("kforge: cannot read the library: {}\n", failure)};
  if (!doc || doc->data.is_null()) return not_found(path);
  const int pages = doc->pages();
  if (api) return {200, "application/json", doc->data.dump(1, ' ', false, json::error_handler_t::replace), pages};
  if (page > pages) return not_found(path);
  const View view{base, page, pages, doc->per_page, written, highlight_installed()};
  const std::string title = page == 1 ? doc->title : fmt::format("{} (page {} of {})", doc->title, page, pages);
  return {200, "text/html; charset=utf-8", layout(title, doc->render(doc->data, view), view, live && doc->live), pages};
}

Result<std::vector<std::string>> Site::page_names() const {
  const std::string& run_id = db_->run_id;
  std::lock_guard lock(*mutex_);
  Reader reader(db_->db);
  sqlite3_exec(db_->db, "BEGIN", nullptr, nullptr, nullptr);
  std::vector<std::string> names = {"index", "library"};
  try {
    if (!run_id.empty() && reader.row("SELECT 1 FROM run WHERE run_id = ?1", {run_id}).is_null()) {
      sqlite3_exec(db_->db, "COMMIT", nullptr, nullptr, nullptr);
      return make_error(ErrorKind::invalid_input, "--run: no run {} in this library", run_id);
    }
    const std::string in_run = "(?1 = '' OR run_id = ?1)";
    for (const auto& r : reader.rows("SELECT run_id FROM run WHERE " + in_run + " ORDER BY started_at", {run_id}))
      names.push_back("run-" + encode_name(r["run_id"]));
    for (const auto& t : reader.rows("SELECT DISTINCT e.run_id, k.task FROM evaluation e JOIN kernel k USING(kernel_key) "
                                     "WHERE e.run_id <> '' AND (?1 = '' OR e.run_id = ?1) ORDER BY e.run_id, k.task",
                                     {run_id}))
      names.push_back("task-" + encode_name(t["run_id"]) + "-" + encode_name(t["task"]));
    // A run's kernels, the parents they are diffed against, and the ones published for its tasks
    // (its library and device pages show those); its devices. Any other page they would link to
    // (a child or parent made by another run, another run) is named as text.
    const std::string kernels = run_id.empty() ? "SELECT kernel_key FROM kernel" : R"sql(
WITH evaluated AS (SELECT DISTINCT kernel_key FROM evaluation WHERE run_id = ?1)
SELECT kernel_key FROM evaluated
UNION SELECT parent_key FROM kernel WHERE kernel_key IN evaluated AND parent_key IN (SELECT kernel_key FROM kernel)
UNION SELECT b.kernel_key FROM best b JOIN kernel k USING(kernel_key)
      WHERE k.task IN (SELECT task FROM kernel WHERE kernel_key IN evaluated))sql";
    for (const auto& k : reader.rows(kernels + " ORDER BY 1", {run_id})) names.push_back("kernel-" + encode_name(k["kernel_key"]));
    for (const auto& d : reader.rows("SELECT device_key FROM device WHERE ?1 = '' OR device_key IN "
                                     "(SELECT device_key FROM evaluation WHERE run_id = ?1) ORDER BY device_key",
                                     {run_id}))
      names.push_back("device-" + encode_name(d["device_key"]));
  } catch (const std::exception& e) {
    sqlite3_exec(db_->db, "COMMIT", nullptr, nullptr, nullptr);
    return make_error(ErrorKind::database, "cannot read the library: {}", e.what());
  }
  sqlite3_exec(db_->db, "COMMIT", nullptr, nullptr, nullptr);
  return names;
}

Status serve(const Site& site, const std::string& host, int port, const std::function<void(int)>& on_listening) {
  httplib::Server server;
  server.Get(".*", [&](const httplib::Request& req, httplib::Response& res) {
    Response r = site.get(req.path, /*live=*/true);
    res.status = r.status;
    res.set_content(r.body, r.content_type);
    // Only our scripts run, whatever a page shows.
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; object-src 'none'");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Cache-Control", "no-store");
  });
  // Read-only: nothing is accepted but GET and HEAD.
  auto refuse = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "GET, HEAD");
    res.set_content("kforge serve is read-only: GET and HEAD only\n", "text/plain");
  };
  server.Post(".*", refuse);
  server.Put(".*", refuse);
  server.Patch(".*", refuse);
  server.Delete(".*", refuse);
  server.Options(".*", refuse);
  const int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0)
    return make_error(ErrorKind::io, "cannot listen on {}:{}: the address is taken or not this machine's", host, port);
  on_listening(bound);
  if (!server.listen_after_bind()) return make_error(ErrorKind::io, "the server on {}:{} stopped", host, bound);
  return {};
}

Result<int> write_report(const Site& site, const std::string& out_dir) {
  auto names = site.page_names();
  if (!names) return names.error();
  std::error_code ec;
  fs::create_directories(fs::path(out_dir) / "api", ec);
  fs::create_directories(fs::path(out_dir) / "static", ec);
  if (ec) return make_error(ErrorKind::io, "{}: cannot create the report directory: {}", out_dir, ec.message());
  auto write = [&](const std::string& relative, const std::string& body) -> Status {
    std::ofstream out(fs::path(out_dir) / relative, std::ios::binary);
    out << body;
    if (!out) return make_error(ErrorKind::io, "{}/{}: cannot write", out_dir, relative);
    return {};
  };
  for (const char* file : {"kforge.js", "kforge.css", "highlight.min.js", "highlight.css"}) {
    Response r = site.get(std::string("static/") + file);
    if (r.status != 200) continue;  // no highlight.js installed: pages work without it
    if (auto s = write(std::string("static/") + file, r.body); !s) return s.error();
  }
  // Links to pages not written here are drawn as text; a long table's further pages (NAME-p2.html
  // ...) are written after its first, which says how many there are.
  const std::set<std::string> written(names->begin(), names->end());
  int files = 0;
  for (const auto& name : *names) {
    int pages = 1;
    for (int page = 1; page <= pages; ++page) {
      const std::string path = page == 1 ? name + ".html" : fmt::format("{}-p{}.html", name, page);
      Response r = site.get(path, /*live=*/false, &written);
      if (r.status != 200) return make_error(ErrorKind::database, "{}: {}", path, r.body);
      if (auto s = write(path, r.body); !s) return s.error();
      pages = r.pages, ++files;
    }
    Response r = site.get("api/" + name + ".json");
    if (r.status != 200) return make_error(ErrorKind::database, "api/{}.json: {}", name, r.body);
    if (auto s = write("api/" + name + ".json", r.body); !s) return s.error();
  }
  return files;
}

}  // namespace kforge::web
