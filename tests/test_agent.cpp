// The agent component against a fake LLM server on 127.0.0.1: the outside world, scripted.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <thread>

#include "agent/agent.hpp"
#include "tests/fake_llm_server.hpp"

namespace kforge {
namespace {

using json = nlohmann::json;

std::string openai_body(const std::string& text, int prompt_tokens = 100, int completion_tokens = 50) {
  return json{{"id", "chatcmpl-1"},
              {"object", "chat.completion"},
              {"model", "fake-model-2025"},
              {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", "stop"}}}},
              {"usage", {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens}}}}
      .dump();
}

std::string anthropic_body(const std::string& text, int input_tokens, int output_tokens) {
  return json{{"id", "msg_1"},
              {"type", "message"},
              {"role", "assistant"},
              {"model", "claude-fake"},
              {"content", {{{"type", "text"}, {"text", text}}}},
              {"stop_reason", "end_turn"},
              {"usage", {{"input_tokens", input_tokens}, {"output_tokens", output_tokens}}}}
      .dump();
}

LlmConfig config_for(const FakeLlmServer& server, LlmProvider provider = LlmProvider::openai) {
  LlmEndpoint e;
  e.name = "fake";
  e.provider = provider;
  e.base_url = server.url();
  e.model = "fake-model";
  e.max_tokens = 1000;
  e.timeout_s = 5;
  e.usd_per_million_input = 2;
  e.usd_per_million_output = 8;
  LlmConfig config;
  config.endpoints = {e};
  config.max_retries = 3;
  config.backoff_initial_s = 0.01;
  config.backoff_max_s = 5;
  return config;
}

std::unique_ptr<LlmClient> make_client(LlmConfig config, LlmClientOptions options = {}) {
  auto client = LlmClient::create(std::move(config), std::move(options));
  EXPECT_TRUE(client.ok()) << client.error().message;
  return std::move(*client);
}

const std::vector<LlmMessage> kPrompt = {{"system", "You write kernels."}, {"user", "Make rmsnorm fast."}};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(LlmClient, OpenAiHappyPathCountsTokensAndCost) {
  FakeLlmServer server;
  server.push({200, openai_body("```cuda\nkernel\n```", 1200, 300), {}, false});
  setenv("KFORGE_TEST_OPENAI_KEY", "sk-test-123", 1);
  LlmConfig config = config_for(server);
  config.endpoints[0].api_key_env = "KFORGE_TEST_OPENAI_KEY";
  std::vector<LlmAttempt> records;
  LlmClientOptions options;
  options.on_call = [&](const LlmAttempt& r) { records.push_back(r); };
  auto client = make_client(config, options);
  auto reply = client->complete(kPrompt);
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply->text, "```cuda\nkernel\n```");
  EXPECT_EQ(reply->model, "fake-model-2025");
  EXPECT_EQ(reply->input_tokens, 1200);
  EXPECT_EQ(reply->output_tokens, 300);
  EXPECT_FALSE(reply->tokens_estimated);
  EXPECT_DOUBLE_EQ(reply->cost_usd, (1200 * 2.0 + 300 * 8.0) / 1e6);
  EXPECT_EQ(reply->http_status, 200);
  EXPECT_EQ(reply->attempts, 1);
  EXPECT_EQ(reply->finish_reason, "stop");
  EXPECT_GT(reply->latency_s, 0);

  const auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "/v1/chat/completions");
  EXPECT_EQ(seen[0].headers.at("Authorization"), "Bearer sk-test-123");
  EXPECT_EQ(seen[0].body["model"], "fake-model");
  EXPECT_EQ(seen[0].body["max_tokens"], 1000);
  EXPECT_FALSE(seen[0].body.contains("max_completion_tokens"));
  ASSERT_EQ(seen[0].body["messages"].size(), 2u);
  EXPECT_EQ(seen[0].body["messages"][0]["role"], "system");

  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].status, "ok");
  EXPECT_EQ(records[0].http_status, 200);
  EXPECT_EQ(records[0].request_hash, llm_request_hash(kPrompt));
  EXPECT_EQ(records[0].input_tokens, 1200);
  EXPECT_EQ(records[0].request.find("sk-test-123"), std::string::npos) << "the key never goes into a record";
  EXPECT_EQ(json::parse(records[0].response)["model"], "fake-model-2025");
}

TEST(LlmClient, OpenAiMaxCompletionTokensWhenConfigured) {
  FakeLlmServer server;
  server.push({200, openai_body("ok"), {}, false});
  LlmConfig config = config_for(server);
  config.endpoints[0].use_max_completion_tokens = true;
  auto reply = make_client(config)->complete(kPrompt);
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  const auto seen = server.seen();
  EXPECT_EQ(seen[0].body["max_completion_tokens"], 1000);
  EXPECT_FALSE(seen[0].body.contains("max_tokens"));
}

TEST(LlmClient, AnthropicHappyPath) {
  FakeLlmServer server;
  server.push({200, anthropic_body("a kernel", 2000, 500), {}, false});
  setenv("KFORGE_TEST_ANTHROPIC_KEY", "ant-test-456", 1);
  LlmConfig config = config_for(server, LlmProvider::anthropic);
  config.endpoints[0].api_key_env = "KFORGE_TEST_ANTHROPIC_KEY";
  config.endpoints[0].usd_per_million_input = 3;
  config.endpoints[0].usd_per_million_output = 15;
  auto reply = make_client(config)->complete(kPrompt);
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply->text, "a kernel");
  EXPECT_EQ(reply->model, "claude-fake");
  EXPECT_EQ(reply->input_tokens, 2000);
  EXPECT_EQ(reply->output_tokens, 500);
  EXPECT_DOUBLE_EQ(reply->cost_usd, (2000 * 3.0 + 500 * 15.0) / 1e6);
  EXPECT_EQ(reply->finish_reason, "end_turn");

  const auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "/v1/messages");
  EXPECT_EQ(seen[0].headers.at("x-api-key"), "ant-test-456");
  EXPECT_EQ(seen[0].headers.at("anthropic-version"), "2023-06-01");
  EXPECT_EQ(seen[0].headers.count("Authorization"), 0u);
  EXPECT_EQ(seen[0].body["system"], "You write kernels.");
  ASSERT_EQ(seen[0].body["messages"].size(), 1u);
  EXPECT_EQ(seen[0].body["messages"][0]["role"], "user");
  EXPECT_EQ(seen[0].body["max_tokens"], 1000);
}

TEST(LlmClient, RetriesAfter429HonouringRetryAfterSeconds) {
  FakeLlmServer server;
  server.push({429, R"({"error": {"message": "rate limited"}})", {{"Retry-After", "1"}}, false});
  server.push({200, openai_body("after the wait"), {}, false});
  std::vector<LlmAttempt> records;
  LlmClientOptions options;
  options.on_call = [&](const LlmAttempt& r) { records.push_back(r); };
  auto client = make_client(config_for(server), options);
  const auto start = std::chrono::steady_clock::now();
  auto reply = client->complete(kPrompt);
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_GE(seconds_since(start), 0.95) << "Retry-After: 1 was not honoured";
  EXPECT_EQ(reply->text, "after the wait");
  EXPECT_EQ(reply->attempts, 2);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].http_status, 429);
  EXPECT_EQ(records[0].status, "http_error");
  EXPECT_NE(records[0].error.find("rate limited"), std::string::npos);
  EXPECT_EQ(records[1].status, "ok");
}

TEST(LlmClient, RetryAfterAsHttpDate) {
  FakeLlmServer server;
  char date[64];
  const time_t when = std::time(nullptr) + 2;
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", std::gmtime(&when));
  server.push({503, "overloaded", {{"Retry-After", date}}, false});
  server.push({200, openai_body("ok"), {}, false});
  const auto start = std::chrono::steady_clock::now();
  auto reply = make_client(config_for(server))->complete(kPrompt);
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_GE(seconds_since(start), 0.9);
  EXPECT_LE(seconds_since(start), 3.5);
}

TEST(LlmClient, RetryAfterLongerThanTheBackoffCapEndsTheCall) {
  FakeLlmServer server;
  server.push({429, R"({"error": {"message": "quota"}})", {{"Retry-After", "3600"}}, false});
  auto reply = make_client(config_for(server))->complete(kPrompt);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().message.find("asks to retry after 3600 s"), std::string::npos) << reply.error().message;
  EXPECT_EQ(server.seen().size(), 1u);
}

TEST(LlmClient, ServerErrorTwiceThenSuccess) {
  FakeLlmServer server;
  server.push({500, R"({"error": {"message": "internal"}})", {}, false});
  server.push({502, "<html>bad gateway</html>", {}, false});
  server.push({200, openai_body("third time"), {}, false});
  std::vector<LlmAttempt> records;
  LlmClientOptions options;
  options.on_call = [&](const LlmAttempt& r) { records.push_back(r); };
  auto reply = make_client(config_for(server), options)->complete(kPrompt);
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply->text, "third time");
  EXPECT_EQ(reply->attempts, 3);
  EXPECT_EQ(server.seen().size(), 3u);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].http_status, 500);
  EXPECT_EQ(records[1].http_status, 502);
  EXPECT_EQ(records[2].attempt, 3);
}

TEST(LlmClient, ServerErrorsPastTheRetriesFail) {
  FakeLlmServer server;
  server.set_fallback([](const json&) { return Scripted{503, R"({"error": {"message": "down"}})", {}, false}; });
  LlmConfig config = config_for(server);
  config.max_retries = 2;
  auto reply = make_client(config)->complete(kPrompt);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().message.find("HTTP 503: down (after 3 attempts)"), std::string::npos) << reply.error().message;
  EXPECT_EQ(server.seen().size(), 3u);
}

TEST(LlmClient, ClientErrorIsClearAndNotRetried) {
  FakeLlmServer server;
  server.push({400, R"({"error": {"message": "max_tokens is too large: 1000000", "type": "invalid_request_error"}})", {}, false});
  auto reply = make_client(config_for(server))->complete(kPrompt);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().message, "LLM endpoint 'fake': HTTP 400: max_tokens is too large: 1000000");
  EXPECT_EQ(server.seen().size(), 1u);
}

TEST(LlmClient, AnthropicErrorBodyMessage) {
  FakeLlmServer server;
  server.push({401, R"({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})", {}, false});
  auto reply = make_client(config_for(server, LlmProvider::anthropic))->complete(kPrompt);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().message.find("HTTP 401: invalid x-api-key"), std::string::npos) << reply.error().message;
}

TEST(LlmClient, HangingServerTimesOutWithinTheConfiguredTime) {
  FakeLlmServer server;
  server.set_fallback([](const json&) { return Scripted{200, "", {}, true}; });
  LlmConfig config = config_for(server);
  config.endpoints[0].timeout_s = 0.3;
  config.max_retries = 1;
  std::vector<LlmAttempt> records;
  LlmClientOptions options;
  options.on_call = [&](const LlmAttempt& r) { records.push_back(r); };
  const auto start = std::chrono::steady_clock::now();
  auto reply = make_client(config, options)->complete(kPrompt);
  const double elapsed = seconds_since(start);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().message.find("timed out after 0.3 s"), std::string::npos) << reply.error().message;
  EXPECT_GE(elapsed, 0.55);  // two attempts of 0.3 s
  EXPECT_LE(elapsed, 1.5);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].status, "timeout");
}

TEST(LlmClient, NonJsonBodyIsABadReply) {
  FakeLlmServer server;
  server.push({200, "<html>proxy login</html>", {}, false});
  std::vector<LlmAttempt> records;
  LlmClientOptions options;
  options.on_call = [&](const LlmAttempt& r) { records.push_back(r); };
  auto reply = make_client(config_for(server), options)->complete(kPrompt);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().message.find("the body is not JSON: <html>proxy login</html>"), std::string::npos)
      << reply.error().message;
  EXPECT_EQ(server.seen().size(), 1u);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].status, "bad_reply");
  EXPECT_EQ(records[0].response, "<html>proxy login</html>");
}

TEST(LlmClient, JsonWithoutChoicesIsABadReply) {
  FakeLlmServer server;
  server.push({200, R"({"id": "x", "usage": {"prompt_tokens": 1}})", {}, false});
  auto reply = make_client(config_for(server))->complete(kPrompt);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().message.find("no 'choices'"), std::string::npos) << reply.error().message;
}

TEST(LlmClient, EmptyReplyIsAnErrorButItsTokensAreCounted) {
  FakeLlmServer server;
  server.push({200, openai_body("", 100, 1000), {}, false});
  auto budget = std::make_shared<LlmBudget>();
  LlmClientOptions options;
  options.budget = budget;
  auto reply = make_client(config_for(server), options)->complete(kPrompt);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().message.find("empty reply"), std::string::npos) << reply.error().message;
  EXPECT_EQ(budget->usage().tokens, 1100);
  EXPECT_EQ(budget->usage().in_flight, 0);
}

TEST(LlmClient, BudgetRefusesACallBeforeItIsSent) {
  FakeLlmServer server;
  server.set_fallback([](const json&) { return Scripted{200, openai_body("ok"), {}, false}; });
  // One call may cost up to 1000 output tokens at $8/M = $0.008 plus its prompt; $0.005 is too little.
  auto budget = std::make_shared<LlmBudget>(LlmBudgetLimits{0.005});
  LlmClientOptions options;
  options.budget = budget;
  auto reply = make_client(config_for(server), options)->complete(kPrompt);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().message.find("LLM budget: this call could cost up to $0.008"), std::string::npos)
      << reply.error().message;
  EXPECT_EQ(server.seen().size(), 0u);
  ASSERT_TRUE(budget->exhausted().has_value()) << "refused with nothing in flight: the search should stop";
  EXPECT_EQ(budget->exhausted()->rfind("this call could cost", 0), 0u) << *budget->exhausted();

  auto tokens = std::make_shared<LlmBudget>(LlmBudgetLimits{1e9, 500});
  options.budget = tokens;
  reply = make_client(config_for(server), options)->complete(kPrompt);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.error().message.find("tokens"), std::string::npos) << reply.error().message;
  EXPECT_EQ(server.seen().size(), 0u);

  auto time = std::make_shared<LlmBudget>(LlmBudgetLimits{1e9, 1'000'000'000, 0.0});
  EXPECT_TRUE(time->exhausted().has_value());
  options.budget = time;
  EXPECT_FALSE(make_client(config_for(server), options)->complete(kPrompt).ok());
  EXPECT_EQ(server.seen().size(), 0u);
}

TEST(LlmClient, ConcurrentCallsUnderABudgetNeverOvershoot) {
  FakeLlmServer server;
  // Every reply uses the worst case the client holds for it, so the budget fits an exact count.
  server.set_fallback([](const json& request) {
    int64_t prompt = 16;
    for (const auto& m : request["messages"])
      prompt += static_cast<int64_t>(m["content"].get<std::string>().size() + m["role"].get<std::string>().size()) + 8;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return Scripted{200, openai_body("ok", static_cast<int>(prompt), 1000), {}, false};
  });
  LlmConfig config = config_for(server);
  int64_t prompt = 16;
  for (const auto& m : kPrompt) prompt += static_cast<int64_t>(m.content.size() + m.role.size()) + 8;
  const double per_call = (prompt * 2.0 + 1000 * 8.0) / 1e6;
  const double limit = per_call * 10.5;  // room for 10 calls, not 11
  auto budget = std::make_shared<LlmBudget>(LlmBudgetLimits{limit});
  LlmClientOptions options;
  options.budget = budget;
  auto client = make_client(config, options);
  std::atomic<int> ok{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 4; ++i) (client->complete(kPrompt).ok() ? ok : refused)++;
    });
  for (auto& t : threads) t.join();
  const LlmBudgetUsage usage = budget->usage();
  EXPECT_LE(usage.usd, limit);
  EXPECT_EQ(ok.load(), 10);
  EXPECT_EQ(refused.load(), 22);
  EXPECT_EQ(server.seen().size(), 10u);
  EXPECT_EQ(usage.in_flight, 0);
  EXPECT_EQ(usage.held_tokens, 0);
  EXPECT_NEAR(usage.usd, per_call * 10, 1e-12);
}

TEST(LlmClient, ReplayAnswersIdenticallyWithoutAServer) {
  std::vector<LlmAttempt> records;
  std::vector<std::string> texts;
  const std::vector<LlmMessage> other = {{"user", "Another prompt."}};
  {
    FakeLlmServer server;
    server.push({500, "{}", {}, false});
    server.push({200, openai_body("first", 10, 20), {}, false});
    server.push({200, openai_body("second", 11, 21), {}, false});
    server.push({200, openai_body("other", 12, 22), {}, false});
    LlmClientOptions options;
    options.on_call = [&](const LlmAttempt& r) { records.push_back(r); };
    auto client = make_client(config_for(server), options);
    for (const auto* prompt : {&kPrompt, &kPrompt, &other}) {
      auto reply = client->complete(*prompt);
      ASSERT_TRUE(reply.ok()) << reply.error().message;
      texts.push_back(reply->text);
    }
  }  // the server is gone
  ASSERT_EQ(records.size(), 4u);
  LlmConfig config = llm_config_from_url("http://127.0.0.1:1", "fake-model");
  config.endpoints[0].api_key_env = "KFORGE_TEST_KEY_THAT_IS_NOT_SET";  // a replay needs no key
  LlmClientOptions options;
  options.replay = std::make_shared<LlmReplay>(records);
  options.budget = std::make_shared<LlmBudget>();
  auto client = make_client(config, options);
  auto first = client->complete(kPrompt);
  auto other_reply = client->complete(other);
  auto second = client->complete(kPrompt);
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_TRUE(second.ok()) << second.error().message;
  ASSERT_TRUE(other_reply.ok()) << other_reply.error().message;
  EXPECT_EQ(first->text, texts[0]);
  EXPECT_EQ(second->text, texts[1]);
  EXPECT_EQ(other_reply->text, texts[2]);
  EXPECT_TRUE(first->replayed);
  EXPECT_EQ(first->input_tokens, 10);
  EXPECT_EQ(second->output_tokens, 21);
  EXPECT_EQ(first->model, "fake-model-2025");
  EXPECT_EQ(options.budget->usage().tokens, 10 + 20 + 11 + 21 + 12 + 22);
  auto third = client->complete(kPrompt);
  ASSERT_FALSE(third.ok());
  EXPECT_NE(third.error().message.find("no recorded reply for this prompt"), std::string::npos);
}

TEST(LlmClient, MissingKeyVariableIsAnErrorAtCreation) {
  LlmConfig config = llm_config_from_url("https://api.openai.com/v1", "gpt-x");
  config.endpoints[0].api_key_env = "KFORGE_TEST_KEY_THAT_IS_NOT_SET";
  auto client = LlmClient::create(config);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().message,
            "LLM endpoint 'gpt-x': $KFORGE_TEST_KEY_THAT_IS_NOT_SET is not set (it should hold the API key)");
}

TEST(LlmClient, EndpointsArePickedByWeightWithASeed) {
  FakeLlmServer server;
  server.set_fallback([](const json& request) {
    return Scripted{200, openai_body(request["model"].get<std::string>()), {}, false};
  });
  LlmConfig config = config_for(server);
  config.endpoints.push_back(config.endpoints[0]);
  config.endpoints[0].model = "big";
  config.endpoints[0].weight = 1;
  config.endpoints[1].model = "small";
  config.endpoints[1].name = "small";
  config.endpoints[1].weight = 3;
  auto pick = [&] {
    auto client = make_client(config);
    std::string order;
    for (int i = 0; i < 200; ++i) {
      auto reply = client->complete(kPrompt);
      EXPECT_TRUE(reply.ok());
      order += reply.ok() && reply->endpoint == "small" ? 's' : 'b';
    }
    return order;
  };
  const std::string first = pick(), second = pick();
  EXPECT_EQ(first, second) << "the same seed picks the same endpoints";
  const auto small = std::count(first.begin(), first.end(), 's');
  EXPECT_GT(small, 130);
  EXPECT_LT(small, 170);
}

TEST(LlmConfigFile, ParsesEndpointsAndBudget) {
  auto config = parse_llm_config(R"(
max_retries = 5
seed = 7
[budget]
usd = 2.5
seconds = 1800

[[endpoint]]
name = "gpt"
base_url = "https://api.openai.com/v1"
model = "gpt-5-mini"
api_key_env = "OPENAI_API_KEY"
max_tokens = 16384
max_tokens_field = "max_completion_tokens"
usd_per_million_input = 0.25
usd_per_million_output = 2.0
weight = 0.8

[[endpoint]]
provider = "anthropic"
base_url = "https://api.anthropic.com"
model = "claude-sonnet-4-5"
api_key_env = "ANTHROPIC_API_KEY"
temperature = 1.0
timeout_s = 600
weight = 0.2
)",
                                 "llm.toml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->max_retries, 5);
  EXPECT_EQ(config->seed, 7u);
  EXPECT_DOUBLE_EQ(config->budget.usd, 2.5);
  EXPECT_DOUBLE_EQ(config->budget.seconds, 1800);
  ASSERT_EQ(config->endpoints.size(), 2u);
  EXPECT_TRUE(config->endpoints[0].use_max_completion_tokens);
  EXPECT_EQ(config->endpoints[0].name, "gpt");
  EXPECT_DOUBLE_EQ(config->endpoints[0].usd_per_million_output, 2.0);
  EXPECT_EQ(config->endpoints[1].provider, LlmProvider::anthropic);
  EXPECT_EQ(config->endpoints[1].name, "claude-sonnet-4-5");
  EXPECT_EQ(llm_request_url(config->endpoints[0]), "https://api.openai.com/v1/chat/completions");
  EXPECT_EQ(llm_request_url(config->endpoints[1]), "https://api.anthropic.com/v1/messages");
}

TEST(LlmConfigFile, NamesEveryProblem) {
  auto config = parse_llm_config(R"(
[[endpoint]]
provider = "gemini"
model = "m"
api_key = "sk-123"
max_tokens = 0
colour = "blue"
)",
                                 "bad.toml");
  ASSERT_FALSE(config.ok());
  const std::string& m = config.error().message;
  EXPECT_NE(m.find("bad.toml: endpoint[0].provider: 'gemini' is not openai or anthropic"), std::string::npos) << m;
  EXPECT_NE(m.find("bad.toml: endpoint[0].base_url: missing"), std::string::npos) << m;
  EXPECT_NE(m.find("bad.toml: endpoint[0].api_key: keys are never stored in files"), std::string::npos) << m;
  EXPECT_NE(m.find("bad.toml: endpoint[0].max_tokens: expected an integer >= 1"), std::string::npos) << m;
  EXPECT_NE(m.find("bad.toml: endpoint[0].colour: unknown key"), std::string::npos) << m;
  EXPECT_FALSE(parse_llm_config("max_retries = [", "syntax.toml").ok());
  EXPECT_FALSE(parse_llm_config("seed = 1", "none.toml").ok());
}

TEST(LlmConfigFile, RequestUrls) {
  LlmEndpoint e;
  e.base_url = "http://localhost:11434";
  EXPECT_EQ(llm_request_url(e), "http://localhost:11434/v1/chat/completions");
  e.base_url = "http://localhost:8000/v1/";
  EXPECT_EQ(llm_request_url(e), "http://localhost:8000/v1/chat/completions");
  e.base_url = "https://example.com/openai/v1/chat/completions";
  EXPECT_EQ(llm_request_url(e), "https://example.com/openai/v1/chat/completions");
  EXPECT_EQ(llm_config_from_url("https://api.anthropic.com", "claude").endpoints[0].provider, LlmProvider::anthropic);
  setenv("OPENAI_API_KEY", "sk-real", 1);
  setenv("KFORGE_LLM_API_KEY", "local", 1);
  EXPECT_EQ(llm_config_from_url("https://api.openai.com/v1", "gpt").endpoints[0].api_key_env, "OPENAI_API_KEY");
  EXPECT_EQ(llm_config_from_url("http://10.0.0.5:8000/v1", "qwen").endpoints[0].api_key_env, "KFORGE_LLM_API_KEY")
      << "an OpenAI key never goes to another host";
  unsetenv("OPENAI_API_KEY");
  unsetenv("KFORGE_LLM_API_KEY");
}

// ---- Replies -------------------------------------------------------------------------------

TEST(KernelSource, PrefersTheBlockWithAnEntryLine) {
  const std::string reply =
      "Here is the plan:\n```cpp\nint helper();\n```\nAnd the kernel:\n```cuda\n// @kforge entry: k\n"
      "extern \"C\" __global__ void k() {}\n```\nUsage:\n```bash\nmake\n```\n";
  auto source = extract_kernel_source(reply);
  ASSERT_TRUE(source.ok()) << source.error().message;
  EXPECT_EQ(*source, "// @kforge entry: k\nextern \"C\" __global__ void k() {}\n");
}

TEST(KernelSource, ElseTheLastCodeBlock) {
  auto source = extract_kernel_source("```\nfirst\n```\ntext\n```c++\nsecond\n```");
  ASSERT_TRUE(source.ok());
  EXPECT_EQ(*source, "second\n");
  auto none = extract_kernel_source("I would use shared memory.\n```text\nnot code\n```");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().message, "the reply has no fenced code block in C++/CUDA/HIP (1 in other languages)");
}

const char* kParent =
    "extern \"C\" void f(float* y, int n) {\n"
    "  for (int i = 0; i < n; ++i) {\n"
    "    y[i] = 0.0f;\n"
    "  }\n"
    "}\n";

TEST(DiffBlocks, ExactMatch) {
  auto blocks = parse_diff_blocks(
      "Change the fill:\n<<<<<<< SEARCH\n    y[i] = 0.0f;\n=======\n    y[i] = 1.0f;\n>>>>>>> REPLACE\n");
  ASSERT_TRUE(blocks.ok()) << blocks.error().message;
  ASSERT_EQ(blocks->size(), 1u);
  EXPECT_EQ((*blocks)[0].reply_line, 2);
  auto patched = apply_diff_blocks(kParent, *blocks);
  ASSERT_TRUE(patched.ok()) << patched.error().message;
  EXPECT_EQ(*patched, std::string(kParent).replace(std::string(kParent).find("0.0f"), 4, "1.0f"));
}

TEST(DiffBlocks, IndentationAndTrailingWhitespaceTolerant) {
  // The model lost the indentation and added trailing spaces; the replacement moves to the source's indent.
  auto blocks = parse_diff_blocks(
      "<<<<<<< SEARCH\nfor (int i = 0; i < n; ++i) {   \n  y[i] = 0.0f;\n}\n=======\n#pragma omp simd\n"
      "for (int i = 0; i < n; ++i) {\n  y[i] = 2.0f;\n}\n>>>>>>> REPLACE\n");
  ASSERT_TRUE(blocks.ok()) << blocks.error().message;
  auto patched = apply_diff_blocks(kParent, *blocks);
  ASSERT_TRUE(patched.ok()) << patched.error().message;
  EXPECT_EQ(*patched,
            "extern \"C\" void f(float* y, int n) {\n"
            "  #pragma omp simd\n"
            "  for (int i = 0; i < n; ++i) {\n"
            "    y[i] = 2.0f;\n"
            "  }\n"
            "}\n");
}

TEST(DiffBlocks, ABlockThatDoesNotApplyIsAnErrorNamingIt) {
  auto blocks = parse_diff_blocks(
      "<<<<<<< SEARCH\n    y[i] = 0.0f;\n=======\n    y[i] = 1.0f;\n>>>>>>> REPLACE\n\n"
      "<<<<<<< SEARCH\n  y[i] += bias[i];\n=======\n  y[i] = 3.0f;\n>>>>>>> REPLACE\n");
  ASSERT_TRUE(blocks.ok()) << blocks.error().message;
  auto patched = apply_diff_blocks(kParent, *blocks);
  ASSERT_FALSE(patched.ok());
  EXPECT_EQ(patched.error().message,
            "diff block 2 of 2 (reply line 7) does not apply: its SEARCH text is not in the source as the blocks "
            "before it left it, not even ignoring indentation; it begins 'y[i] += bias[i];'");
}

TEST(DiffBlocks, SeveralBlocksApplyInOrder) {
  // The second block's SEARCH is what the first one wrote.
  auto blocks = parse_diff_blocks(
      "<<<<<<< SEARCH\n    y[i] = 0.0f;\n=======\n    y[i] = 1.0f;\n>>>>>>> REPLACE\n"
      "<<<<<<< SEARCH\n    y[i] = 1.0f;\n=======\n    y[i] = 1.0f + i;\n>>>>>>> REPLACE\n"
      "<<<<<<< SEARCH\nextern \"C\" void f(float* y, int n) {\n=======\n// patched\n"
      "extern \"C\" void f(float* y, int n) {\n>>>>>>> REPLACE\n");
  ASSERT_TRUE(blocks.ok()) << blocks.error().message;
  ASSERT_EQ(blocks->size(), 3u);
  auto patched = apply_diff_blocks(kParent, *blocks);
  ASSERT_TRUE(patched.ok()) << patched.error().message;
  EXPECT_EQ(*patched,
            "// patched\n"
            "extern \"C\" void f(float* y, int n) {\n"
            "  for (int i = 0; i < n; ++i) {\n"
            "    y[i] = 1.0f + i;\n"
            "  }\n"
            "}\n");
}

TEST(DiffBlocks, ExactMatchesStartAtALine) {
  // "= 0.0f;" occurs mid-line only; as a SEARCH line it must not match there.
  auto blocks = parse_diff_blocks("<<<<<<< SEARCH\n= 0.0f;\n=======\n= 1.0f;\n>>>>>>> REPLACE\n");
  ASSERT_TRUE(blocks.ok()) << blocks.error().message;
  EXPECT_FALSE(apply_diff_blocks(kParent, *blocks).ok());
}

TEST(DiffBlocks, MalformedBlocksAreErrors) {
  EXPECT_EQ(parse_diff_blocks("no diff here").error().message,
            "the reply has no '<<<<<<< SEARCH' / '=======' / '>>>>>>> REPLACE' block");
  EXPECT_EQ(parse_diff_blocks("x\n<<<<<<< SEARCH\na\n=======\nb\n").error().message,
            "diff block 1 (reply line 2): not terminated by '>>>>>>> REPLACE'");
  EXPECT_EQ(parse_diff_blocks("<<<<<<< SEARCH\n\n=======\nb\n>>>>>>> REPLACE\n").error().message,
            "diff block 1 (reply line 1): its SEARCH part is empty");
}

// ---- Prompts -------------------------------------------------------------------------------

TEST(PromptTemplate, RendersAndNamesMissingPlaceholders) {
  auto text = render_template("Task {{task}} on {{ arch }}; code keeps {{0}} and dim3{{1,2}}.",
                              {{"task", "llm/rmsnorm"}, {"arch", "sm_90"}, {"unused", "x"}});
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(*text, "Task llm/rmsnorm on sm_90; code keeps {{0}} and dim3{{1,2}}.");
  auto missing = render_template("a\n{{task}} {{parent_source}}\n{{hw_notes}}", {{"task", "t"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "no value for placeholders {{parent_source}} (line 2), {{hw_notes}} (line 3)");
  auto once = render_template("{{a}}", {{"a", "{{b}}"}});
  ASSERT_TRUE(once.ok());
  EXPECT_EQ(*once, "{{b}}") << "a value is not rendered again";
}

// Every template in prompts/ renders with a sample value for each placeholder it uses: none
// refers to a value the search does not provide.
TEST(PromptTemplate, EveryTemplateRendersWithSampleValues) {
  const std::map<std::string, std::string> values = {
      {"backend", "cuda"},
      {"arch", "sm_90"},
      {"device", "NVIDIA H100 80GB HBM3 (132 SMs)"},
      {"contract", "the CUDA contract"},
      {"hw_notes", "# sm_90\n- 3.35 TB/s HBM3"},
      {"task_id", "llm/rmsnorm"},
      {"category", "normalization"},
      {"description", "y = x / rms(x) * w per row"},
      {"signature", "extern \"C\" __global__ void rmsnorm_f32(const float* x, const float* w, float* y, int M, int N, float eps);"},
      {"arguments", "x f32 in [M, N]\nw f32 in [N]\ny f32 out [M, N]"},
      {"bench_shapes", "M=1,N=4096; M=64,N=4096"},
      {"check_shapes", "M=1,N=1; M=3,N=17"},
      {"constraints", "(none)"},
      {"tolerance", "atol 1e-4, rtol 1e-4"},
      {"roofline", "M=64,N=4096: 2.1 MB, floor 0.6 us at 3350 GB/s"},
      {"exemplar", "```cuda\n// @kforge entry: softmax_f32\n```"},
      {"task", "the rendered task"},
      {"parent_source", "// @kforge entry: rmsnorm_f32\n..."},
      {"parent_metrics", "speedup 3.2x, 410 GB/s"},
      {"history", "1. diff: incorrect (held-out shape)"},
      {"top_programs", "(none)"},
      {"retrieved", "(none)"},
      {"other_source", "// @kforge entry: rmsnorm_f32\n..."},
      {"other_metrics", "speedup 2.9x"},
      {"failure_kind", "compile_error"},
      {"failure", "error: identifier \"BLOCKS\" is undefined"},
  };
  const std::filesystem::path dir = std::filesystem::path(KFORGE_SOURCE_DIR) / "prompts";
  int rendered = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = std::filesystem::relative(entry.path(), dir).string();
    auto text = render_prompt(dir.string(), name, values);
    EXPECT_TRUE(text.ok()) << text.error().message;
    if (text.ok()) {
      EXPECT_EQ(text->find("{{"), std::string::npos) << name << " left a placeholder";
      ++rendered;
    }
  }
  for (const char* name : {"system.txt", "contract_cpu.txt", "contract_cuda.txt", "contract_hip.txt", "task.txt",
                           "rewrite.txt", "diff.txt", "crossover.txt", "fix.txt", "hw/sm_80.md", "hw/sm_90.md",
                           "hw/gfx90a.md", "hw/gfx942.md", "hw/x86-64-avx2.md", "hw/x86-64-avx512.md"})
    EXPECT_TRUE(std::filesystem::exists(dir / name)) << name;
  EXPECT_GE(rendered, 15);
}

}  // namespace
}  // namespace kforge
