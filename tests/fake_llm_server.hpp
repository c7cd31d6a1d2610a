// A fake LLM server on 127.0.0.1 (cpp-httplib): the outside world, scripted, for the agent's
// tests and benchmarks. It serves scripted replies in order, then a fallback that may look at the
// request; the helpers below answer a search's requests with a given kernel.
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kforge {

using json = nlohmann::json;

struct Scripted {
  int status = 200;
  std::string body;
  std::map<std::string, std::string> headers;
  bool hang = false;    // never answer (until the server stops)
  double delay_s = 0;  // answer after this long, as a model takes its time (other requests go on)
};

struct Seen {
  std::string path;
  json body;
  std::map<std::string, std::string> headers;
};

// Serves the scripted replies in order, then `fallback` (if set) forever.
class FakeLlmServer {
 public:
  FakeLlmServer() {
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      Scripted reply;
      {
        std::lock_guard lock(mutex_);
        Seen seen{req.path, json::parse(req.body, nullptr, false), {}};
        for (const auto& [k, v] : req.headers) seen.headers[k] = v;
        seen_.push_back(std::move(seen));
        if (!script_.empty()) {
          reply = script_.front();
          script_.pop_front();
        } else if (fallback_) {
          reply = fallback_(seen_.back().body);
        } else {
          reply = {500, R"({"error": {"message": "the script is over"}})", {}, false};
        }
      }
      while (reply.hang && !stopping_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      std::this_thread::sleep_for(std::chrono::duration<double>(reply.delay_s));
      res.status = reply.status;
      for (const auto& [k, v] : reply.headers) res.set_header(k, v);
      res.set_content(reply.body, "application/json");
    };
    server_.Post("/v1/chat/completions", handler);
    server_.Post("/v1/messages", handler);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeLlmServer() {
    stopping_ = true;
    server_.stop();
    thread_.join();
  }
  void push(Scripted reply) {
    std::lock_guard lock(mutex_);
    script_.push_back(std::move(reply));
  }
  void set_fallback(std::function<Scripted(const json& request)> fallback) {
    std::lock_guard lock(mutex_);
    fallback_ = std::move(fallback);
  }
  std::vector<Seen> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::deque<Scripted> script_;
  std::function<Scripted(const json&)> fallback_;
  std::vector<Seen> seen_;
};

// An OpenAI chat completion whose message is `text`.
inline std::string reply_body(const std::string& text) {
  return json{{"model", "fake"},
              {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", "stop"}}}},
              {"usage", {{"prompt_tokens", 1000}, {"completion_tokens", 200}}}}
      .dump();
}

// The parent kernel as the prompt shows it: the first fenced block after `heading`.
inline std::string fenced_after(const std::string& text, const std::string& heading) {
  const std::size_t at = text.find(heading);
  if (at == std::string::npos) return "";
  const std::size_t open = text.find("```\n", at);
  const std::size_t close = text.find("\n```", open + 4);
  return text.substr(open + 4, close - open - 4) + "\n";
}

// Answers a search's request in the form its prompt asks for: a diff request gets a SEARCH block
// holding the whole parent and a REPLACE block holding `kernel`; any other request the kernel in a
// fenced block.
inline std::string answer(const json& request, const std::string& kernel) {
  const std::string user = request["messages"][1]["content"];
  if (user.find("SEARCH/REPLACE blocks") == std::string::npos)
    return "Here it is.\n```cpp\n" + kernel + "```\n";
  const std::string parent = fenced_after(user, "## The parent kernel");
  return "A focused change.\n<<<<<<< SEARCH\n" + parent + "=======\n" + kernel + ">>>>>>> REPLACE\n";
}

}  // namespace kforge
