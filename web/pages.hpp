// Internal to web: each page's HTML from its JSON document (data.hpp), inside the common layout.
#pragma once

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>

namespace kforge::web {

// How a page is drawn: which slice of its long table (a document's rows are shown `per_page` at a
// time, as NAME.html, NAME-p2.html, ...; its charts on the first page, over every row), and which
// pages there are to link to.
struct View {
  std::string name;  // the document's name: its first page is NAME.html, its JSON api/NAME.json
  int page = 1, pages = 1;
  std::size_t per_page = 200;
  // A report's pages (names without .html): a link to any other page is drawn as text, so a
  // report never links to a file it did not write. Null: every page (the server).
  const std::set<std::string>* written = nullptr;
  bool highlight = true;  // highlight.js is installed: the pages load it

  bool links(const std::string& page_name) const { return !written || written->count(page_name) > 0; }
  // The rows [first, last) of `total` this page shows.
  std::pair<std::size_t, std::size_t> range(std::size_t total) const {
    const std::size_t first = std::min(total, (page - 1) * per_page);
    return {first, std::min(total, first + per_page)};
  }
};

// The page around `body`; `refresh` reloads it every few seconds (a live run).
std::string layout(const std::string& title, const std::string& body, const View& view, bool refresh);

std::string index_html(const nlohmann::json& runs, const View& view);
std::string run_html(const nlohmann::json& run, const View& view);
std::string task_html(const nlohmann::json& task, const View& view);
std::string kernel_html(const nlohmann::json& kernel, const View& view);
std::string device_html(const nlohmann::json& device, const View& view);
std::string library_html(const nlohmann::json& library, const View& view);
std::string not_found_html(const std::string& what, bool highlight);

}  // namespace kforge::web
