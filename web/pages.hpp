// Internal to web: each page's HTML from its JSON document (data.hpp), inside the common layout.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace kforge::web {

// The page around `body`; `name` is the page's own name (its JSON is api/NAME.json); `refresh`
// reloads it every few seconds (a live run).
std::string layout(const std::string& title, const std::string& body, const std::string& name, bool refresh);

std::string index_html(const nlohmann::json& runs);
std::string run_html(const nlohmann::json& run);
std::string task_html(const nlohmann::json& task);
std::string kernel_html(const nlohmann::json& kernel);
std::string device_html(const nlohmann::json& device);
std::string library_html(const nlohmann::json& library);
std::string not_found_html(const std::string& what);

}  // namespace kforge::web
