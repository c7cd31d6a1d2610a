// Endpoint files: TOML in, LlmConfig out, every problem named by file and key.
#include <toml++/toml.h>

#include <cstdlib>
#include <set>
#include <sstream>

#include "agent/agent.hpp"

namespace kforge {
namespace {

struct Problems {
  std::string origin;
  std::vector<std::string> lines;
  template <class... Args>
  void add(fmt::format_string<Args...> format, Args&&... args) {
    lines.push_back(origin + ": " + fmt::format(format, std::forward<Args>(args)...));
  }
};

std::optional<double> number(const toml::node* node) {
  if (!node) return std::nullopt;
  if (auto i = node->value_exact<int64_t>()) return static_cast<double>(*i);
  if (auto d = node->value_exact<double>()) return *d;
  return std::nullopt;
}

// Reads key `key` of `table` into `out` if present: a number >= `minimum`.
void read_number(const toml::table& table, const std::string& field, const char* key, double minimum, double& out,
                 Problems& problems) {
  const toml::node* node = table.get(key);
  if (!node) return;
  auto value = number(node);
  if (!value || *value < minimum)
    problems.add("{}{}: expected a number >= {}", field, key, minimum);
  else
    out = *value;
}

void read_integer(const toml::table& table, const std::string& field, const char* key, int64_t minimum, int64_t& out,
                  Problems& problems) {
  const toml::node* node = table.get(key);
  if (!node) return;
  auto value = node->value_exact<int64_t>();
  if (!value || *value < minimum)
    problems.add("{}{}: expected an integer >= {}", field, key, minimum);
  else
    out = *value;
}

void read_string(const toml::table& table, const std::string& field, const char* key, std::string& out,
                 Problems& problems) {
  const toml::node* node = table.get(key);
  if (!node) return;
  auto value = node->value_exact<std::string>();
  if (!value)
    problems.add("{}{}: expected a string", field, key);
  else
    out = *value;
}

void refuse_unknown_keys(const toml::table& table, const std::string& field, const std::set<std::string>& known,
                         Problems& problems) {
  for (const auto& [key, value] : table) {
    const std::string k(key.str());
    if (k == "api_key")
      problems.add("{}api_key: keys are never stored in files; put it in an environment variable and name "
                   "that in api_key_env", field);
    else if (!known.count(k))
      problems.add("{}{}: unknown key", field, k);
  }
}

LlmEndpoint read_endpoint(const toml::table& t, const std::string& field, Problems& problems) {
  refuse_unknown_keys(t,
                      field,
                      {"name", "provider", "base_url", "model", "api_key_env", "temperature", "max_tokens",
                       "max_tokens_field", "timeout_s", "connect_timeout_s", "usd_per_million_input",
                       "usd_per_million_output", "weight"},
                      problems);
  LlmEndpoint e;
  std::string provider = "openai", field_name = "max_tokens";
  read_string(t, field, "provider", provider, problems);
  if (provider == "anthropic")
    e.provider = LlmProvider::anthropic;
  else if (provider != "openai")
    problems.add("{}provider: '{}' is not openai or anthropic", field, provider);
  read_string(t, field, "base_url", e.base_url, problems);
  read_string(t, field, "model", e.model, problems);
  if (e.base_url.empty()) problems.add("{}base_url: missing", field);
  if (e.model.empty()) problems.add("{}model: missing", field);
  e.name = e.model;
  read_string(t, field, "name", e.name, problems);
  read_string(t, field, "api_key_env", e.api_key_env, problems);
  read_number(t, field, "temperature", 0, e.temperature, problems);
  read_integer(t, field, "max_tokens", 1, e.max_tokens, problems);
  read_string(t, field, "max_tokens_field", field_name, problems);
  if (field_name == "max_completion_tokens")
    e.use_max_completion_tokens = true;
  else if (field_name != "max_tokens")
    problems.add("{}max_tokens_field: '{}' is not max_tokens or max_completion_tokens", field, field_name);
  if (e.use_max_completion_tokens && e.provider == LlmProvider::anthropic)
    problems.add("{}max_tokens_field: anthropic takes max_tokens only", field);
  read_number(t, field, "timeout_s", 0.001, e.timeout_s, problems);
  read_number(t, field, "connect_timeout_s", 0.001, e.connect_timeout_s, problems);
  read_number(t, field, "usd_per_million_input", 0, e.usd_per_million_input, problems);
  read_number(t, field, "usd_per_million_output", 0, e.usd_per_million_output, problems);
  read_number(t, field, "weight", 0, e.weight, problems);
  return e;
}

}  // namespace

Result<LlmConfig> parse_llm_config(std::string_view text, const std::string& origin) {
  toml::table table;
  try {
    table = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    return make_error(ErrorKind::invalid_input, "{}:{}:{}: {}", origin, e.source().begin.line, e.source().begin.column,
                      e.description());
  }
  Problems problems{origin, {}};
  LlmConfig config;
  refuse_unknown_keys(table, "", {"endpoint", "max_retries", "backoff_initial_s", "backoff_max_s", "seed", "budget"},
                      problems);
  int64_t retries = config.max_retries, seed = static_cast<int64_t>(config.seed);
  read_integer(table, "", "max_retries", 0, retries, problems);
  read_integer(table, "", "seed", 0, seed, problems);
  config.max_retries = static_cast<int>(std::min<int64_t>(retries, 100));
  config.seed = static_cast<uint64_t>(seed);
  read_number(table, "", "backoff_initial_s", 0, config.backoff_initial_s, problems);
  read_number(table, "", "backoff_max_s", 0, config.backoff_max_s, problems);

  if (const toml::node* node = table.get("budget")) {
    if (const toml::table* b = node->as_table()) {
      refuse_unknown_keys(*b, "budget.", {"usd", "tokens", "seconds"}, problems);
      read_number(*b, "budget.", "usd", 0, config.budget.usd, problems);
      read_integer(*b, "budget.", "tokens", 0, config.budget.tokens, problems);
      read_number(*b, "budget.", "seconds", 0, config.budget.seconds, problems);
    } else {
      problems.add("budget: expected a table");
    }
  }

  const toml::array* endpoints = table.get_as<toml::array>("endpoint");
  if (!endpoints || endpoints->empty()) {
    problems.add("endpoint: at least one [[endpoint]] table is needed");
  } else {
    double total_weight = 0;
    for (size_t i = 0; i < endpoints->size(); ++i) {
      const std::string field = fmt::format("endpoint[{}].", i);
      const toml::table* t = (*endpoints)[i].as_table();
      if (!t) {
        problems.add("endpoint[{}]: expected a table", i);
        continue;
      }
      config.endpoints.push_back(read_endpoint(*t, field, problems));
      total_weight += config.endpoints.back().weight;
    }
    if (problems.lines.empty() && total_weight <= 0) problems.add("endpoint: every weight is 0");
  }
  if (!problems.lines.empty()) {
    std::string message;
    for (const auto& line : problems.lines) message += (message.empty() ? "" : "\n") + line;
    return Error{ErrorKind::invalid_input, message};
  }
  return config;
}

Result<LlmConfig> load_llm_config(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.error();
  return parse_llm_config(*text, path);
}

LlmConfig llm_config_from_url(const std::string& url, const std::string& model) {
  LlmEndpoint e;
  e.base_url = url;
  e.model = e.name = model;
  if (url.find("api.anthropic.com") != std::string::npos) e.provider = LlmProvider::anthropic;
  // A provider's key goes to that provider's host only, never to an arbitrary URL.
  const char* key_env = e.provider == LlmProvider::anthropic           ? "ANTHROPIC_API_KEY"
                        : url.find("api.openai.com") != std::string::npos ? "OPENAI_API_KEY"
                                                                          : "KFORGE_LLM_API_KEY";
  if (const char* key = std::getenv(key_env); key && *key) e.api_key_env = key_env;
  LlmConfig config;
  config.endpoints.push_back(e);
  return config;
}

std::string llm_request_url(const LlmEndpoint& endpoint) {
  std::string url = endpoint.base_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  const std::string path = endpoint.provider == LlmProvider::anthropic ? "/messages" : "/chat/completions";
  if (url.size() >= path.size() && url.compare(url.size() - path.size(), path.size(), path) == 0) return url;
  if (url.size() >= 3 && url.compare(url.size() - 3, 3, "/v1") == 0) return url + path;
  return url + "/v1" + path;
}

}  // namespace kforge
