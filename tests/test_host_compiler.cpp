#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "compiler_bridge/compiler_bridge.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

class HostCompilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_ = fs::path(::testing::TempDir()) / ("kforge-compiler-" + std::to_string(getpid()));
    fs::remove_all(cache_);
    auto c = HostCompiler::create({.compiler = "", .cache_dir = cache_.string()});
    ASSERT_TRUE(c.ok()) << c.error().message;
    compiler_.emplace(std::move(*c));
  }
  void TearDown() override { fs::remove_all(cache_); }
  fs::path cache_;
  std::optional<HostCompiler> compiler_;
};

const char* kAdd = "extern \"C\" int add(int a, int b) { return a + b + OFFSET; }\n";

TEST_F(HostCompilerTest, CompilesLoadsAndCallsWithDefines) {
  auto binary = compiler_->compile({kAdd, "add.cpp", {{"OFFSET", 10}}, ""});
  ASSERT_TRUE(binary.ok()) << binary.error().message;
  EXPECT_FALSE(binary->cache_hit);
  auto library = SharedLibrary::open(binary->path);
  ASSERT_TRUE(library.ok()) << library.error().message;
  auto add = library->symbol("add");
  ASSERT_TRUE(add.ok());
  EXPECT_EQ(reinterpret_cast<int (*)(int, int)>(*add)(1, 2), 13);
  EXPECT_FALSE(library->symbol("missing").ok());
}

TEST_F(HostCompilerTest, SecondCompileIsACacheHitAndDefinesChangeTheKey) {
  auto first = compiler_->compile({kAdd, "add.cpp", {{"OFFSET", 1}}, ""});
  auto second = compiler_->compile({kAdd, "add.cpp", {{"OFFSET", 1}}, ""});
  auto other = compiler_->compile({kAdd, "add.cpp", {{"OFFSET", 2}}, ""});
  ASSERT_TRUE(first.ok() && second.ok() && other.ok());
  EXPECT_TRUE(second->cache_hit);
  EXPECT_EQ(first->path, second->path);
  EXPECT_NE(first->key, other->key);
  EXPECT_TRUE(fs::is_empty(cache_ / "tmp")) << "scratch directories must be removed";
}

TEST_F(HostCompilerTest, CompileErrorReturnsTheFullLog) {
  auto binary = compiler_->compile({"extern \"C\" int f() { return undefined_name; }\n", "broken.cpp", {}, ""});
  ASSERT_FALSE(binary.ok());
  EXPECT_EQ(binary.error().kind, ErrorKind::compile);
  EXPECT_NE(binary.error().message.find("broken.cpp:1"), std::string::npos) << binary.error().message;
  EXPECT_NE(binary.error().message.find("undefined_name"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(cache_ / "tmp"));
  EXPECT_FALSE(fs::exists(cache_ / "cpu")) << "a failed compile caches nothing";
}

TEST_F(HostCompilerTest, UnresolvedSymbolsFailAtLinkTime) {
  auto binary = compiler_->compile({"extern \"C\" int g(); extern \"C\" int f() { return g(); }\n", "k.cpp", {}, ""});
  ASSERT_FALSE(binary.ok());
  EXPECT_NE(binary.error().message.find("undefined reference to `g'"), std::string::npos) << binary.error().message;
}

TEST_F(HostCompilerTest, AnyFileNameCompilesAsCpp) {
  for (const char* name : {"naive", "kernel.so", "k.txt"}) {
    auto binary = compiler_->compile({kAdd, name, {{"OFFSET", 0}}, ""});
    EXPECT_TRUE(binary.ok()) << name << ": " << binary.error().message;
  }
}

TEST_F(HostCompilerTest, MissingCompilerIsAClearError) {
  auto c = HostCompiler::create({.compiler = "no-such-compiler-xyz", .cache_dir = cache_.string()});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("host compiler 'no-such-compiler-xyz' does not run"), std::string::npos);
}

TEST(RunProcess, CapturesOutputExitCodeAndTimeout) {
  auto ok = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"}, "", 10);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->exit_code, 3);
  EXPECT_NE(ok->output.find("out"), std::string::npos);
  EXPECT_NE(ok->output.find("err"), std::string::npos);
  auto slow = run_process({"sh", "-c", "exec >&-; exec 2>&-; sleep 30"}, "", 0.3);
  ASSERT_TRUE(slow.ok());
  EXPECT_TRUE(slow->timed_out) << "a child that closes its output and hangs must still time out";
}

TEST(RunInChild, ClosesInheritedDescriptorsAndSurvivesThrows) {
  int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 3);
  auto r = run_in_child(
      [fd](int out) {
        const char* answer = fcntl(fd, F_GETFD) == -1 ? "closed" : "open";
        (void)!write(out, answer, strlen(answer));
      },
      10);
  close(fd);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->output, "closed");
  auto thrown = run_in_child([](int) { throw std::runtime_error("boom"); }, 10);
  ASSERT_TRUE(thrown.ok());
  EXPECT_EQ(thrown->exit_code, 4) << "an exception must end the child, not run the caller's code";
}

}  // namespace
