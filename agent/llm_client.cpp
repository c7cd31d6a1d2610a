// The LLM client: one libcurl POST per attempt, provider-specific bodies on either side, and the
// retry, budget and record/replay policy around them.
#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <random>
#include <thread>

#include "agent/agent.hpp"

namespace kforge {
namespace {

using json = nlohmann::json;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double seconds_since(int64_t start_ns) { return static_cast<double>(now_ns() - start_ns) * 1e-9; }

const char* provider_name(LlmProvider provider) {
  return provider == LlmProvider::anthropic ? "anthropic" : "openai";
}

// ---- HTTP ----------------------------------------------------------------------------------

struct HttpResult {
  CURLcode code = CURLE_OK;
  std::string curl_error;
  long status = 0;
  std::string body;
  std::string retry_after;  // the Retry-After header's value, if any
};

size_t collect_body(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

size_t collect_header(char* data, size_t size, size_t count, void* out) {
  std::string_view line(data, size * count);
  constexpr std::string_view name = "retry-after:";
  if (line.size() > name.size()) {
    bool match = true;
    for (size_t i = 0; i < name.size() && match; ++i) match = std::tolower(static_cast<unsigned char>(line[i])) == name[i];
    if (match) {
      std::string value(line.substr(name.size()));
      while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.pop_back();
      while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) value.erase(0, 1);
      static_cast<HttpResult*>(out)->retry_after = value;
    }
  }
  return size * count;
}

HttpResult http_post(const std::string& url, const std::vector<std::string>& headers, const std::string& body,
                     double timeout_s, double connect_timeout_s) {
  HttpResult result;
  CURL* curl = curl_easy_init();
  if (!curl) {
    result.code = CURLE_FAILED_INIT;
    result.curl_error = "curl_easy_init failed";
    return result;
  }
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &result);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM for timeouts: we run in many threads
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, std::max(1L, static_cast<long>(timeout_s * 1000)));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, std::max(1L, static_cast<long>(connect_timeout_s * 1000)));
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");  // whatever curl can decode
  result.code = curl_easy_perform(curl);
  if (result.code != CURLE_OK) result.curl_error = error[0] ? error : curl_easy_strerror(result.code);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return result;
}

// Seconds to wait from a Retry-After value: delay-seconds or an HTTP date; nothing if neither.
std::optional<double> parse_retry_after(const std::string& value) {
  if (value.empty()) return std::nullopt;
  char* end = nullptr;
  const double seconds = std::strtod(value.c_str(), &end);
  if (end && *end == '\0' && seconds >= 0) return seconds;
  const time_t when = curl_getdate(value.c_str(), nullptr);
  if (when < 0) return std::nullopt;
  return std::max(0.0, std::difftime(when, std::time(nullptr)));
}

// ---- Provider bodies -----------------------------------------------------------------------

json request_body(const LlmEndpoint& e, const std::vector<LlmMessage>& messages) {
  json body = {{"model", e.model}, {"temperature", e.temperature}};
  json list = json::array();
  if (e.provider == LlmProvider::anthropic) {
    std::string system;
    for (const auto& m : messages) {
      if (m.role == "system")
        system += (system.empty() ? "" : "\n\n") + m.content;
      else
        list.push_back({{"role", m.role}, {"content", m.content}});
    }
    if (!system.empty()) body["system"] = system;
    body["max_tokens"] = e.max_tokens;
  } else {
    for (const auto& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
    body[e.use_max_completion_tokens ? "max_completion_tokens" : "max_tokens"] = e.max_tokens;
  }
  body["messages"] = std::move(list);
  return body;
}

// The message of a provider's error body: OpenAI {"error": {"message"}}, Anthropic {"type":
// "error", "error": {"message"}}, Ollama {"error": "..."}, vLLM {"message"}, FastAPI {"detail"}.
std::string provider_error_message(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_object()) {
    if (auto e = j.find("error"); e != j.end()) {
      if (e->is_string()) return e->get<std::string>();
      if (e->is_object() && e->contains("message") && (*e)["message"].is_string())
        return (*e)["message"].get<std::string>();
    }
    for (const char* key : {"message", "detail"})
      if (j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  }
  std::string excerpt = body.substr(0, 200);
  return excerpt.empty() ? "(empty body)" : excerpt;
}

struct ParsedReply {
  std::string text, model, finish_reason;
  std::optional<int64_t> input_tokens, output_tokens;
};

std::optional<int64_t> integer_at(const json& j, const char* key) {
  if (j.is_object() && j.contains(key) && j[key].is_number_integer()) return j[key].get<int64_t>();
  return std::nullopt;
}

// Parses a 2xx body; the error says what is missing (the caller names the endpoint).
Result<ParsedReply> parse_reply_body(LlmProvider provider, const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  auto bad = [&](std::string_view what) {
    return make_error(ErrorKind::invalid_input, "bad reply: {}: {}", what,
                      body.empty() ? std::string("(empty body)") : body.substr(0, 200));
  };
  if (j.is_discarded()) return bad("the body is not JSON");
  if (!j.is_object()) return bad("the body is not a JSON object");
  ParsedReply reply;
  if (j.contains("model") && j["model"].is_string()) reply.model = j["model"].get<std::string>();
  const json usage = j.contains("usage") ? j["usage"] : json();
  if (provider == LlmProvider::anthropic) {
    if (!j.contains("content") || !j["content"].is_array()) return bad("no 'content' array");
    for (const auto& block : j["content"])
      if (block.is_object() && block.value("type", "") == "text" && block.contains("text") && block["text"].is_string())
        reply.text += block["text"].get<std::string>();
    if (j.contains("stop_reason") && j["stop_reason"].is_string()) reply.finish_reason = j["stop_reason"];
    if (auto in = integer_at(usage, "input_tokens"))
      reply.input_tokens = *in + integer_at(usage, "cache_creation_input_tokens").value_or(0) +
                           integer_at(usage, "cache_read_input_tokens").value_or(0);
    reply.output_tokens = integer_at(usage, "output_tokens");
  } else {
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return bad("no 'choices'");
    const json& choice = j["choices"][0];
    if (!choice.is_object() || !choice.contains("message") || !choice["message"].is_object())
      return bad("choices[0] has no 'message'");
    const json& content = choice["message"].contains("content") ? choice["message"]["content"] : json();
    if (content.is_string()) {
      reply.text = content.get<std::string>();
    } else if (!content.is_null()) {
      return bad("choices[0].message.content is not a string");
    }
    if (choice.contains("finish_reason") && choice["finish_reason"].is_string())
      reply.finish_reason = choice["finish_reason"];
    reply.input_tokens = integer_at(usage, "prompt_tokens");
    reply.output_tokens = integer_at(usage, "completion_tokens");
  }
  return reply;
}

bool blank(const std::string& text) {
  return text.find_first_not_of(" \t\r\n") == std::string::npos;
}

double cost_of(const LlmEndpoint& e, int64_t input_tokens, int64_t output_tokens) {
  return (static_cast<double>(input_tokens) * e.usd_per_million_input +
          static_cast<double>(output_tokens) * e.usd_per_million_output) *
         1e-6;
}

// An upper bound on the prompt's tokens: a byte-level BPE token covers at least one byte, plus
// the chat template's few tokens a message.
int64_t worst_case_input_tokens(const std::vector<LlmMessage>& messages) {
  int64_t n = 16;
  for (const auto& m : messages) n += static_cast<int64_t>(m.content.size() + m.role.size()) + 8;
  return n;
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Returns the hold on the budget when it leaves scope, with what the call used by then.
struct BudgetHold {
  LlmBudget* budget = nullptr;
  uint64_t ticket = 0;
  double usd = 0;
  int64_t tokens = 0;
  ~BudgetHold() {
    if (budget && ticket) budget->settle(ticket, usd, tokens);
  }
};

}  // namespace

// ---- Budget --------------------------------------------------------------------------------

LlmBudget::LlmBudget(LlmBudgetLimits limits) : limits_(limits), start_ns_(now_ns()) {}

Result<uint64_t> LlmBudget::reserve(double usd, int64_t tokens) {
  std::lock_guard lock(mutex_);
  std::optional<Error> refusal;
  if (seconds_since(start_ns_) >= limits_.seconds)
    refusal = make_error(ErrorKind::invalid_input, "LLM budget: the {} s of wall clock are up", limits_.seconds);
  else if (usage_.usd + usage_.held_usd + usd > limits_.usd)
    refusal = make_error(ErrorKind::invalid_input,
                         "LLM budget: this call could cost up to ${:.4f}; ${:.4f} spent and ${:.4f} held by calls in "
                         "flight leave less of the ${:.4f} limit",
                         usd, usage_.usd, usage_.held_usd, limits_.usd);
  else if (static_cast<double>(usage_.tokens) + static_cast<double>(usage_.held_tokens) + static_cast<double>(tokens) >
           static_cast<double>(limits_.tokens))
    refusal = make_error(ErrorKind::invalid_input,
                         "LLM budget: this call could use up to {} tokens; {} used and {} held by calls in flight "
                         "leave less of the {} limit",
                         tokens, usage_.tokens, usage_.held_tokens, limits_.tokens);
  if (refusal) {
    // With nothing in flight no hold can come back to make room: a call this size never fits.
    if (holds_.empty()) refused_ = refusal->message.substr(std::string_view("LLM budget: ").size());
    return *refusal;
  }
  const uint64_t ticket = next_ticket_++;
  holds_[ticket] = {usd, tokens};
  usage_.held_usd += usd;
  usage_.held_tokens += tokens;
  ++usage_.in_flight;
  return ticket;
}

void LlmBudget::settle(uint64_t ticket, double usd, int64_t tokens) {
  std::lock_guard lock(mutex_);
  auto it = holds_.find(ticket);
  if (it == holds_.end()) return;
  usage_.held_usd -= it->second.first;
  usage_.held_tokens -= it->second.second;
  if (holds_.size() == 1) usage_.held_usd = 0;  // no drift from float subtraction
  holds_.erase(it);
  --usage_.in_flight;
  ++usage_.calls;
  usage_.usd += usd;
  usage_.tokens += tokens;
}

LlmBudgetUsage LlmBudget::usage() const {
  std::lock_guard lock(mutex_);
  LlmBudgetUsage u = usage_;
  u.elapsed_s = seconds_since(start_ns_);
  return u;
}

std::optional<std::string> LlmBudget::exhausted() const {
  std::lock_guard lock(mutex_);
  if (seconds_since(start_ns_) >= limits_.seconds) return fmt::format("the {} s of wall clock are up", limits_.seconds);
  if (usage_.usd >= limits_.usd) return fmt::format("${:.4f} of ${:.4f} spent", usage_.usd, limits_.usd);
  if (usage_.tokens >= limits_.tokens) return fmt::format("{} of {} tokens used", usage_.tokens, limits_.tokens);
  return refused_;
}

double LlmBudget::seconds_left() const { return limits_.seconds - seconds_since(start_ns_); }

// ---- Record and replay ---------------------------------------------------------------------

std::string llm_request_hash(const std::vector<LlmMessage>& messages) {
  json list = json::array();
  for (const auto& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  return content_hash(list.dump());
}

LlmReplay::LlmReplay(const std::vector<LlmAttempt>& records) {
  for (const auto& r : records)
    if (r.status == "ok") {
      by_hash_[r.request_hash].push_back(r);
      ++size_;
    }
}

Result<LlmReply> LlmReplay::answer(const std::vector<LlmMessage>& messages) {
  const std::string hash = llm_request_hash(messages);
  LlmAttempt record;
  size_t n = 0;
  {
    std::lock_guard lock(mutex_);
    auto it = by_hash_.find(hash);
    n = used_[hash]++;
    if (it == by_hash_.end() || n >= it->second.size())
      return make_error(ErrorKind::invalid_input,
                        "replay: no recorded reply for this prompt (request {}, call {} with it; {} recorded)", hash,
                        n + 1, it == by_hash_.end() ? 0 : it->second.size());
    record = it->second[n];
  }
  auto parsed = parse_reply_body(record.provider == "anthropic" ? LlmProvider::anthropic : LlmProvider::openai,
                                 record.response);
  if (!parsed) return make_error(ErrorKind::invalid_input, "replay: request {}: {}", hash, parsed.error().message);
  LlmReply reply;
  reply.text = parsed->text;
  reply.model = parsed->model.empty() ? record.model : parsed->model;
  reply.endpoint = record.endpoint;
  reply.input_tokens = record.input_tokens;
  reply.output_tokens = record.output_tokens;
  reply.cost_usd = record.cost_usd;
  reply.latency_s = record.latency_s;
  reply.http_status = record.http_status;
  reply.attempts = 1;
  reply.finish_reason = parsed->finish_reason;
  reply.replayed = true;
  return reply;
}

// ---- Client --------------------------------------------------------------------------------

LlmClient::LlmClient(LlmConfig config, LlmClientOptions options, std::vector<std::string> keys)
    : config_(std::move(config)), options_(std::move(options)), keys_(std::move(keys)), rng_state_(config_.seed) {}

Result<std::unique_ptr<LlmClient>> LlmClient::create(LlmConfig config, LlmClientOptions options) {
  if (config.endpoints.empty()) return make_error(ErrorKind::invalid_input, "LLM config: no endpoint");
  double total_weight = 0;
  std::vector<std::string> keys;
  for (const auto& e : config.endpoints) {
    total_weight += std::max(0.0, e.weight);
    std::string key;
    if (!e.api_key_env.empty()) {
      const char* value = std::getenv(e.api_key_env.c_str());
      if ((!value || !*value) && !options.replay)
        return make_error(ErrorKind::invalid_input, "LLM endpoint '{}': ${} is not set (it should hold the API key)",
                          e.name, e.api_key_env);
      if (value) key = value;
    }
    keys.push_back(std::move(key));
  }
  if (total_weight <= 0) return make_error(ErrorKind::invalid_input, "LLM config: every endpoint has weight 0");
  static std::once_flag curl_ready;
  std::call_once(curl_ready, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return std::unique_ptr<LlmClient>(new LlmClient(std::move(config), std::move(options), std::move(keys)));
}

const LlmEndpoint& LlmClient::pick_endpoint() {
  double total = 0;
  for (const auto& e : config_.endpoints) total += std::max(0.0, e.weight);
  std::lock_guard lock(mutex_);
  const double u = static_cast<double>(splitmix64(rng_state_) >> 11) * 0x1.0p-53 * total;
  double sum = 0;
  for (const auto& e : config_.endpoints) {
    sum += std::max(0.0, e.weight);
    if (u < sum) return e;
  }
  for (auto it = config_.endpoints.rbegin(); it != config_.endpoints.rend(); ++it)
    if (it->weight > 0) return *it;
  return config_.endpoints.back();
}

void LlmClient::record(const LlmAttempt& record) {
  if (!options_.on_call) return;
  std::lock_guard lock(mutex_);
  options_.on_call(record);
}

Result<LlmReply> LlmClient::complete(const std::vector<LlmMessage>& messages) {
  if (messages.empty()) return make_error(ErrorKind::invalid_input, "LLM call: no messages");
  const LlmEndpoint& endpoint = pick_endpoint();
  const std::string key = keys_[&endpoint - config_.endpoints.data()];
  const std::string request = request_body(endpoint, messages).dump();
  const std::string hash = llm_request_hash(messages);

  BudgetHold hold;
  if (LlmBudget* budget = options_.budget.get()) {
    const int64_t worst_in = worst_case_input_tokens(messages);
    auto ticket = budget->reserve(cost_of(endpoint, worst_in, endpoint.max_tokens), worst_in + endpoint.max_tokens);
    if (!ticket) return ticket.error();
    hold.budget = budget;
    hold.ticket = *ticket;
  }

  LlmAttempt rec;
  rec.endpoint = endpoint.name;
  rec.provider = provider_name(endpoint.provider);
  rec.model = endpoint.model;
  rec.request_hash = hash;
  rec.request = request;

  if (options_.replay) {
    auto reply = options_.replay->answer(messages);
    if (!reply) return reply.error();
    hold.usd = reply->cost_usd;
    hold.tokens = reply->input_tokens + reply->output_tokens;
    return reply;
  }

  std::vector<std::string> headers = {"Content-Type: application/json"};
  if (endpoint.provider == LlmProvider::anthropic) {
    headers.push_back("anthropic-version: 2023-06-01");
    if (!key.empty()) headers.push_back("x-api-key: " + key);
  } else if (!key.empty()) {
    headers.push_back("Authorization: Bearer " + key);
  }
  const std::string url = llm_request_url(endpoint);
  thread_local std::mt19937_64 jitter(std::random_device{}());
  const int64_t start = now_ns();

  for (int attempt = 1;; ++attempt) {
    double timeout = endpoint.timeout_s;
    if (hold.budget) timeout = std::min(timeout, hold.budget->seconds_left());
    if (timeout <= 0) return make_error(ErrorKind::io, "LLM endpoint '{}': the budget's wall clock is up", endpoint.name);

    const int64_t attempt_start = now_ns();
    HttpResult http = http_post(url, headers, request, timeout, endpoint.connect_timeout_s);
    rec.attempt = attempt;
    rec.http_status = static_cast<int>(http.status);
    rec.response = http.body;
    rec.latency_s = seconds_since(attempt_start);
    rec.input_tokens = rec.output_tokens = 0;
    rec.cost_usd = 0;

    bool retryable = false;
    if (http.code == CURLE_OPERATION_TIMEDOUT) {
      rec.status = "timeout";
      rec.error = fmt::format("LLM endpoint '{}': timed out after {:.3g} s ({})", endpoint.name, timeout, url);
      retryable = true;
    } else if (http.code != CURLE_OK) {
      rec.status = "network_error";
      rec.error = fmt::format("LLM endpoint '{}': {} ({})", endpoint.name, http.curl_error, url);
      retryable = true;
    } else if (http.status == 408 || http.status == 429 || http.status >= 500) {
      rec.status = "http_error";
      rec.error = fmt::format("LLM endpoint '{}': HTTP {}: {}", endpoint.name, http.status,
                              provider_error_message(http.body));
      retryable = true;
    } else if (http.status < 200 || http.status >= 300) {
      rec.status = "http_error";
      rec.error = fmt::format("LLM endpoint '{}': HTTP {}: {}", endpoint.name, http.status,
                              provider_error_message(http.body));
    } else if (auto parsed = parse_reply_body(endpoint.provider, http.body); !parsed) {
      rec.status = "bad_reply";
      rec.error = fmt::format("LLM endpoint '{}': {}", endpoint.name, parsed.error().message);
    } else {
      LlmReply reply;
      reply.text = std::move(parsed->text);
      reply.model = parsed->model.empty() ? endpoint.model : parsed->model;
      reply.endpoint = endpoint.name;
      reply.tokens_estimated = !parsed->input_tokens || !parsed->output_tokens;
      reply.input_tokens = parsed->input_tokens.value_or(worst_case_input_tokens(messages));
      reply.output_tokens =
          parsed->output_tokens.value_or(std::min<int64_t>(endpoint.max_tokens, reply.text.size() + 1));
      reply.cost_usd = cost_of(endpoint, reply.input_tokens, reply.output_tokens);
      reply.latency_s = seconds_since(start);
      reply.http_status = static_cast<int>(http.status);
      reply.attempts = attempt;
      reply.finish_reason = parsed->finish_reason;
      hold.usd = reply.cost_usd;
      hold.tokens = reply.input_tokens + reply.output_tokens;
      rec.input_tokens = reply.input_tokens;
      rec.output_tokens = reply.output_tokens;
      rec.cost_usd = reply.cost_usd;
      if (blank(reply.text)) {
        rec.status = "empty_reply";
        rec.error = fmt::format("LLM endpoint '{}': empty reply (finish_reason '{}', {} output tokens)", endpoint.name,
                                reply.finish_reason, reply.output_tokens);
        record(rec);
        return Error{ErrorKind::invalid_input, rec.error};
      }
      rec.status = "ok";
      rec.error.clear();
      record(rec);
      return reply;
    }

    if (retryable && attempt <= config_.max_retries) {
      double wait = std::min(config_.backoff_max_s, config_.backoff_initial_s * std::pow(2.0, attempt - 1));
      wait *= std::uniform_real_distribution<double>(0.5, 1.0)(jitter);
      if (auto asked = parse_retry_after(http.retry_after)) {
        if (*asked > config_.backoff_max_s) {
          rec.error += fmt::format(" (asks to retry after {:.0f} s, more than backoff_max_s {:.0f})", *asked,
                                   config_.backoff_max_s);
          record(rec);
          return Error{ErrorKind::io, rec.error};
        }
        wait = *asked;
      }
      if (hold.budget && wait >= hold.budget->seconds_left()) {
        rec.error += " (no time left in the budget to retry)";
        record(rec);
        return Error{ErrorKind::io, rec.error};
      }
      record(rec);
      std::this_thread::sleep_for(std::chrono::duration<double>(wait));
      continue;
    }
    record(rec);
    if (retryable && attempt > 1) rec.error += fmt::format(" (after {} attempts)", attempt);
    return Error{retryable ? ErrorKind::io : ErrorKind::invalid_input, rec.error};
  }
}

}  // namespace kforge
