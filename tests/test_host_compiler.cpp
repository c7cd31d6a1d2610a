#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <latch>
#include <thread>

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

TEST_F(HostCompilerTest, AnExplicitArchIsPassedOnAndPartOfTheKey) {
  auto native = compiler_->compile({kAdd, "add.cpp", {{"OFFSET", 1}}, ""});
  auto v2 = compiler_->compile({kAdd, "add.cpp", {{"OFFSET", 1}}, "x86-64-v2"});
  ASSERT_TRUE(native.ok() && v2.ok()) << (v2.ok() ? "" : v2.error().message);
  EXPECT_EQ(native->arch, "native");
  EXPECT_EQ(v2->arch, "x86-64-v2");
  EXPECT_NE(native->key, v2->key);
  // AVX intrinsics do not compile for a target without AVX.
  const std::string avx = "#include <immintrin.h>\nextern \"C\" void f(float* y) { _mm256_storeu_ps(y, _mm256_set1_ps(1)); }\n";
  auto refused = compiler_->compile({avx, "avx.cpp", {}, "x86-64-v2"});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, ErrorKind::compile);
  EXPECT_NE(refused.error().message.find("target specific option mismatch"), std::string::npos) << refused.error().message;
}

TEST_F(HostCompilerTest, ANonsenseArchIsOneInvalidInputLineFromTheCompiler) {
  auto binary = compiler_->compile({kAdd, "add.cpp", {{"OFFSET", 1}}, "pentium-9000"});
  ASSERT_FALSE(binary.ok());
  EXPECT_EQ(binary.error().kind, ErrorKind::invalid_input);
  EXPECT_EQ(binary.error().message.find('\n'), std::string::npos) << binary.error().message;
  EXPECT_NE(binary.error().message.find("cpu: arch pentium-9000: "), std::string::npos) << binary.error().message;
  EXPECT_NE(binary.error().message.find("error"), std::string::npos) << "the compiler's own words";
  auto created = HostCompiler::create({.compiler = "", .arch = "pentium-9000", .cache_dir = cache_.string()});
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.error().kind, ErrorKind::invalid_input);
}

TEST_F(HostCompilerTest, TheTargetIsTheArchOrWhatNativeResolvesTo) {
  EXPECT_EQ(compiler_->arch(), "native");
  EXPECT_EQ(compiler_->target().rfind("native:", 0), 0u) << compiler_->target();
  auto v3 = HostCompiler::create({.compiler = "", .arch = "x86-64-v3", .cache_dir = cache_.string()});
  ASSERT_TRUE(v3.ok()) << v3.error().message;
  EXPECT_EQ(v3->target(), "x86-64-v3");
  // The device key: unchanged for native, the arch appended for another.
  DeviceInfo cpu{.backend = "cpu", .name = "Some CPU", .arch = "native"};
  EXPECT_EQ(device_key(cpu), "cpu:Some CPU");
  cpu.arch = "x86-64-v3";
  EXPECT_EQ(device_key(cpu), "cpu:Some CPU:x86-64-v3");
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

TEST_F(HostCompilerTest, TheCodeHashIgnoresNamesButNotCode) {
  const char* helper =
      "static float twice(float v) { return v * 2; }\n"
      "extern \"C\" void f(float* x, int n) { for (int i = 0; i < n; ++i) x[i] = twice(x[i]); static_assert(UNUSED > 0); }\n";
  const char* renamed =
      "// the same kernel, written by someone else\n"
      "static float double_it(float value) { return value * 2; }\n"
      "extern \"C\" void f(float* data, int count) {\n"
      "  for (int j = 0; j < count; ++j) data[j] = double_it(data[j]);\n"
      "}\n";
  const char* other = "extern \"C\" void f(float* x, int n) { for (int i = 0; i < n; ++i) x[i] = x[i] * 3; }\n";
  auto hash = [&](const char* source, const char* name, int unused) {
    auto binary = compiler_->compile({source, name, {{"UNUSED", unused}}, ""});
    EXPECT_TRUE(binary.ok()) << binary.error().message;
    auto h = code_hash(*binary);
    EXPECT_TRUE(h.ok()) << h.error().message;
    return h.ok() ? *h : "";
  };
  const std::string a = hash(helper, "a.cpp", 1);
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(hash(helper, "param_mutation-7.cpp", 2), a) << "another file name, a define the code does not use";
  EXPECT_EQ(hash(renamed, "b.cpp", 1), a) << "other names, comments and layout";
  EXPECT_NE(hash(other, "a.cpp", 1), a);
  // Not an ELF file: text (PTX) without its comment lines.
  const fs::path ptx = cache_ / "k.ptx";
  std::ofstream(ptx) << "// Generated by a compiler\n.version 8.0\n";
  const fs::path same = cache_ / "l.ptx";
  std::ofstream(same) << "// Generated at another time\n.version 8.0\n";
  auto h1 = code_hash(Binary{.path = ptx.string()}), h2 = code_hash(Binary{.path = same.string()});
  ASSERT_TRUE(h1.ok() && h2.ok());
  EXPECT_EQ(*h1, *h2);
  // A truncated ELF file is an error, not a hash.
  auto so = compiler_->compile({other, "a.cpp", {}, ""});
  ASSERT_TRUE(so.ok());
  const fs::path cut = cache_ / "cut.so";
  fs::copy_file(so->path, cut);
  fs::resize_file(cut, 200);
  EXPECT_FALSE(code_hash(Binary{.path = cut.string()}).ok());
}

TEST_F(HostCompilerTest, ThreadsCompilingTheSameAndOtherSourcesThroughOneCacheAllGetTheirBinaries) {
  // As a search's LLM request threads do: all at once, the same source (one key: every thread
  // builds it, the renames race) and one of each thread's own.
  constexpr int kThreads = 8;
  std::latch start(kThreads);
  std::vector<std::optional<Result<Binary>>> same(kThreads), own(kThreads);
  std::vector<std::string> same_hash(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      same[i] = compiler_->compile({kAdd, "add.cpp", {{"OFFSET", 1000}}, ""});
      if (same[i]->ok()) {
        auto hash = code_hash(**same[i]);
        if (hash) same_hash[i] = *hash;
      }
      own[i] = compiler_->compile({kAdd, "add.cpp", {{"OFFSET", i}}, ""});
    });
  for (auto& t : threads) t.join();
  auto sum = [](const Binary& binary) {
    auto library = SharedLibrary::open(binary.path);
    EXPECT_TRUE(library.ok()) << library.error().message;
    if (!library) return -1;
    return reinterpret_cast<int (*)(int, int)>(library->symbol("add").value())(1, 2);
  };
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_TRUE(same[i]->ok()) << same[i]->error().message;
    ASSERT_TRUE(own[i]->ok()) << own[i]->error().message;
    EXPECT_EQ((*same[i])->path, (*same[0])->path);
    EXPECT_EQ(sum(**same[i]), 1003);
    EXPECT_EQ(sum(**own[i]), 3 + i);
    EXPECT_FALSE(same_hash[i].empty());
    EXPECT_EQ(same_hash[i], same_hash[0]);
  }
  int binaries = 0, logs = 0;
  for (const auto& file : fs::directory_iterator(cache_ / "cpu")) (file.path().extension() == ".so" ? binaries : logs)++;
  EXPECT_EQ(binaries, kThreads + 1);
  EXPECT_EQ(logs, kThreads + 1) << "every binary with its log";
  EXPECT_TRUE(fs::is_empty(cache_ / "tmp")) << "every scratch directory removed";
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
