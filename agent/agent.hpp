// agent: how kforge talks to a language model and reads what it writes back.
//
// The evolutionary search (`kforge search`, agent/search.hpp) asks an LLM to rewrite, patch, cross
// or fix kernels. This header holds the parts of that which stand on their own: an LLM client for
// OpenAI-compatible chat completions (OpenAI, vLLM, llama.cpp server, Ollama, SGLang) and
// Anthropic Messages over libcurl, with weighted endpoints, retries that honour Retry-After, token
// and cost accounting, and a budget that counts calls in flight so concurrent callers cannot
// overshoot it; a record of every call and a replay source, so a run reproduces offline; the
// parsing of replies into a kernel source or SEARCH/REPLACE blocks applied whitespace-tolerantly;
// and the renderer of the prompt templates in prompts/. A bad reply, an unreachable endpoint or
// a spent budget is an expected failure: a Result error, never an exception.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/common.hpp"

namespace kforge {

// ---------------------------------------------------------------------------------------------
// Endpoints

enum class LlmProvider {
  openai,     // POST <base>/v1/chat/completions, "Authorization: Bearer <key>"
  anthropic,  // POST <base>/v1/messages, "x-api-key: <key>", "anthropic-version: 2023-06-01"
};

struct LlmEndpoint {
  std::string name;  // for logs and records; defaults to the model
  LlmProvider provider = LlmProvider::openai;
  std::string base_url;     // "https://api.openai.com/v1", "http://localhost:11434"; a full .../chat/completions too
  std::string model;        // sent as "model"
  std::string api_key_env;  // the environment variable holding the key; empty: send none (local servers)
  double temperature = 0.7;
  int64_t max_tokens = 16384;               // the output cap on every call
  bool use_max_completion_tokens = false;   // openai: send max_completion_tokens (reasoning models)
  double timeout_s = 300;                   // one attempt, connect to last byte
  double connect_timeout_s = 10;
  double usd_per_million_input = 0;         // prices; 0 for a local server
  double usd_per_million_output = 0;
  double weight = 1;                        // relative chance of being picked for a call
};

// A call's spending limits; each defaults to none.
struct LlmBudgetLimits {
  double usd = std::numeric_limits<double>::infinity();
  int64_t tokens = std::numeric_limits<int64_t>::max();  // input + output
  double seconds = std::numeric_limits<double>::infinity();  // wall clock since the budget was made
};

struct LlmConfig {
  std::vector<LlmEndpoint> endpoints;  // at least one
  int max_retries = 3;                 // after the first attempt, on 408, 429, 5xx, timeouts, network errors
  double backoff_initial_s = 2;        // before retry n: initial * 2^n, at most backoff_max_s, times 0.5..1 jitter
  double backoff_max_s = 60;           // also the longest Retry-After honoured; a longer one ends the call
  uint64_t seed = 42;                  // for picking endpoints by weight
  LlmBudgetLimits budget;              // the file's [budget] table, for the caller's LlmBudget
};

// Reads an endpoint file (TOML; README.md "Pointing kforge at an LLM" shows one). Every problem
// is reported with the file and the key at fault; an `api_key` key is refused, keys live in the
// environment variable named by `api_key_env`.
Result<LlmConfig> load_llm_config(const std::string& path);
Result<LlmConfig> parse_llm_config(std::string_view toml, const std::string& origin);

// One endpoint from a URL and a model name, as `--llm-url URL --model NAME` gives them: provider
// anthropic if the URL's host is api.anthropic.com, else openai. The key, if that variable is set:
// $ANTHROPIC_API_KEY for api.anthropic.com, $OPENAI_API_KEY for api.openai.com, else
// $KFORGE_LLM_API_KEY (a provider's key never goes to another host).
LlmConfig llm_config_from_url(const std::string& url, const std::string& model);

// The URL a request to `endpoint` is posted to.
std::string llm_request_url(const LlmEndpoint& endpoint);

// ---------------------------------------------------------------------------------------------
// Budget

struct LlmBudgetUsage {
  double usd = 0;          // spent by finished calls
  int64_t tokens = 0;
  double held_usd = 0;     // held by calls in flight (their worst case)
  int64_t held_tokens = 0;
  int64_t calls = 0;       // finished calls
  int64_t in_flight = 0;
  double elapsed_s = 0;
};

// Spending shared by every caller of one or more clients. A call holds its worst case (prompt
// bytes as input tokens, which bounds a byte-level BPE count, plus max_tokens of output) while in
// flight, so what is spent plus what is held never passes a limit. Thread-safe.
class LlmBudget {
 public:
  explicit LlmBudget(LlmBudgetLimits limits = {});

  // Holds `usd` and `tokens` for a call about to be sent and returns the hold's ticket; refused,
  // with the limit that would be passed, if spent + held + this exceeds a limit or time is up.
  Result<uint64_t> reserve(double usd, int64_t tokens);
  // Replaces the hold by what the call used (0 and 0 when it failed before using anything).
  void settle(uint64_t ticket, double usd, int64_t tokens);
  LlmBudgetUsage usage() const;
  // Why no further call can be made: a limit reached, time up, or a call refused while none
  // was in flight (so none could make room for it); nothing while calls can still be made.
  std::optional<std::string> exhausted() const;
  double seconds_left() const;
  const LlmBudgetLimits& limits() const { return limits_; }

 private:
  LlmBudgetLimits limits_;
  int64_t start_ns_;
  mutable std::mutex mutex_;
  LlmBudgetUsage usage_;
  std::map<uint64_t, std::pair<double, int64_t>> holds_;
  uint64_t next_ticket_ = 1;
  std::optional<std::string> refused_;
};

// ---------------------------------------------------------------------------------------------
// Calls

struct LlmMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

struct LlmReply {
  std::string text;
  std::string model;     // as the provider reports it
  std::string endpoint;  // LlmEndpoint::name
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  bool tokens_estimated = false;  // the reply had no usage; the counts are the worst case held
  double cost_usd = 0;
  double latency_s = 0;  // from the first attempt to the reply, retries and waits included
  int http_status = 0;
  int attempts = 0;
  std::string finish_reason;  // "stop", "length", "end_turn", "max_tokens", ...
  bool replayed = false;      // answered from a recording, no network
};

// One HTTP attempt as the kernel library's llm_call table keeps it. The API key is never in it.
struct LlmAttempt {
  std::string endpoint;
  std::string provider;      // "openai" or "anthropic"
  std::string model;         // as requested
  std::string request_hash;  // llm_request_hash(messages): what replay looks calls up by
  std::string request;       // the JSON body sent
  std::string response;      // the body received, as received (may be empty or not JSON)
  int http_status = 0;       // 0 when no HTTP answer came
  std::string status;        // "ok", "http_error", "timeout", "network_error", "bad_reply", "empty_reply"
  std::string error;         // why, when status is not "ok"
  int attempt = 1;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  double cost_usd = 0;
  double latency_s = 0;      // this attempt
  bool replayed = false;
};

// Hash of the conversation a call sends (roles and contents, in order), independent of the
// endpoint: a replay answers the same prompt whichever endpoint recorded it.
std::string llm_request_hash(const std::vector<LlmMessage>& messages);

// Answers calls from recorded ones, for a run reproduced offline. The n-th call with a given
// request hash gets the n-th recorded "ok" reply with that hash; one more is an error. Thread-safe.
class LlmReplay {
 public:
  explicit LlmReplay(const std::vector<LlmAttempt>& records);
  Result<LlmReply> answer(const std::vector<LlmMessage>& messages);
  size_t size() const { return size_; }

 private:
  std::mutex mutex_;
  std::map<std::string, std::vector<LlmAttempt>> by_hash_;
  std::map<std::string, size_t> used_;
  size_t size_ = 0;
};

struct LlmClientOptions {
  std::shared_ptr<LlmBudget> budget;                       // none: unlimited
  std::function<void(const LlmAttempt&)> on_call;       // every attempt sent, one at a time (none in replay)
  std::shared_ptr<LlmReplay> replay;                       // set: answer from it, no network
};

// Sends conversations to the configured endpoints. Thread-safe: call complete() from as many
// threads as requests should be in flight.
class LlmClient {
 public:
  // Fails if the config has no endpoint or a named key variable is unset (not when replaying).
  static Result<std::unique_ptr<LlmClient>> create(LlmConfig config, LlmClientOptions options = {});

  // Picks an endpoint by weight, holds the worst case on the budget, then sends, retrying 408,
  // 429, 5xx, timeouts and network errors. An error names the endpoint and says why: the provider's
  // message for a 4xx, "not JSON"/"no choices" for a garbage body, "empty reply", "timed out
  // after N s", or the budget limit that refused the call before anything was sent.
  Result<LlmReply> complete(const std::vector<LlmMessage>& messages);

  const LlmConfig& config() const { return config_; }
  LlmBudget* budget() const { return options_.budget.get(); }

 private:
  LlmClient(LlmConfig config, LlmClientOptions options, std::vector<std::string> keys);
  const LlmEndpoint& pick_endpoint();
  void record(const LlmAttempt& record);

  LlmConfig config_;
  LlmClientOptions options_;
  std::vector<std::string> keys_;  // per endpoint, from the environment
  std::mutex mutex_;               // the endpoint RNG and on_call
  uint64_t rng_state_;
};

// ---------------------------------------------------------------------------------------------
// Replies

// The kernel in a reply: of its fenced blocks (```cuda, ```cpp, ```c++, ```hip, ```c, bare ```),
// the last one containing "@kforge entry", else the last one. Error if there is none.
Result<std::string> extract_kernel_source(std::string_view reply);

struct DiffBlock {
  std::string search;   // lines to find, each ending in '\n'
  std::string replace;  // lines to put in their place
  int reply_line = 0;   // where its "<<<<<<< SEARCH" is in the reply, from 1
};

// The `<<<<<<< SEARCH / ======= / >>>>>>> REPLACE` blocks of a reply, in order. Error if there
// is none, or one is unterminated or has an empty SEARCH part.
Result<std::vector<DiffBlock>> parse_diff_blocks(std::string_view reply);

// Applies the blocks in order, each to the result of the ones before, at the first place its
// SEARCH text matches: exactly if it can, else line by line ignoring indentation and trailing
// whitespace (the replacement then re-indented to the matched lines). A block that matches
// nowhere fails the whole diff with an error naming it; none is skipped.
Result<std::string> apply_diff_blocks(std::string_view source, const std::vector<DiffBlock>& blocks);

// ---------------------------------------------------------------------------------------------
// Prompts

// Replaces every `{{name}}` (spaces inside the braces allowed) with values[name]. A placeholder
// without a value is an error naming it and its line; unused values are fine. The text of a
// value is inserted as is, never rendered again.
Result<std::string> render_template(std::string_view text, const std::map<std::string, std::string>& values);

// Reads prompts/<name> under `prompts_dir` and renders it; errors name the file.
Result<std::string> render_prompt(const std::string& prompts_dir, const std::string& name,
                                  const std::map<std::string, std::string>& values);

}  // namespace kforge
