#include <gtest/gtest.h>

#include "compiler_bridge/compiler_bridge.hpp"

using kforge::parse_candidate;

namespace {

std::string error_of(const std::string& source) {
  auto c = parse_candidate(source, "k.cpp");
  return c ? "" : c.error().message;
}

TEST(Candidate, ParsesEveryHeaderKey) {
  auto c = parse_candidate(
      "// @kforge entry: rmsnorm_f32\n"
      "// @kforge about: one block per row\n"
      "// @kforge param: BLOCK=256 in {64, 128, 256}\n"
      "// @kforge param: UNROLL=4\n"
      "// @kforge launch: grid=(M) block=(BLOCK) smem=(BLOCK/32)*4\n"
      "// @kforge launch: grid=(ceil_div(N, BLOCK), M) block=(BLOCK, 1)\n"
      "// @kforge workspace: M*4\n"
      "extern \"C\" void rmsnorm_f32() {}\n",
      "k.cpp");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->entry, "rmsnorm_f32");
  EXPECT_EQ(c->about, "one block per row");
  ASSERT_EQ(c->params.size(), 2u);
  EXPECT_EQ(c->params[0].name, "BLOCK");
  EXPECT_EQ(c->params[0].value, 256);
  EXPECT_EQ(c->params[0].choices, (std::vector<std::int64_t>{64, 128, 256}));
  EXPECT_TRUE(c->params[1].choices.empty());
  ASSERT_EQ(c->launches.size(), 2u);
  kforge::Bindings dims{{"M", 3}, {"N", 1000}, {"BLOCK", 256}};
  EXPECT_EQ(*c->launches[0].shared_bytes->eval(dims), 32);
  ASSERT_EQ(c->launches[1].grid.size(), 2u);
  EXPECT_EQ(*c->launches[1].grid[0].eval(dims), 4);
  EXPECT_EQ(*c->workspace_bytes->eval(dims), 12);
  EXPECT_EQ(c->param_bindings(), (kforge::Bindings{{"BLOCK", 256}, {"UNROLL", 4}}));
}

TEST(Candidate, EntryIsRequiredAndMustBeDefined) {
  EXPECT_NE(error_of("void f() {}\n").find("no '// @kforge entry: NAME' line"), std::string::npos);
  EXPECT_NE(error_of("// @kforge entry: f\nvoid g() {}\n").find("k.cpp: the kernel does not define its entry 'f'"),
            std::string::npos);
  // Mentioned only in a comment does not count.
  EXPECT_NE(error_of("// @kforge entry: f\n// f(x) is great\nvoid g() {}\n").find("does not define"),
            std::string::npos);
  EXPECT_NE(error_of("// @kforge entry: 9f\n").find("k.cpp:1: entry '9f' is not a C identifier"), std::string::npos);
}

TEST(Candidate, BadHeaderLinesSayWhichLine) {
  const std::string body = "extern \"C\" void f() {}\n";
  EXPECT_NE(
      error_of("// @kforge entry: f\n// @kforge entrypoint: g\n" + body).find("k.cpp:2: unknown key 'entrypoint'"),
      std::string::npos);
  EXPECT_NE(
      error_of("// @kforge entry: f\n// @kforge param: BLOCK\n" + body).find("k.cpp:2: 'BLOCK': expected NAME=VALUE"),
      std::string::npos);
  EXPECT_NE(error_of("// @kforge entry: f\n// @kforge param: B=3 in {1,2}\n" + body).find("default 3 is not one of"),
            std::string::npos);
  EXPECT_NE(
      error_of("// @kforge entry: f\n// @kforge param: B=1\n// @kforge param: B=2\n" + body).find("declared twice"),
      std::string::npos);
  EXPECT_NE(
      error_of("// @kforge entry: f\n// @kforge launch: grid=(M)\n" + body).find("needs grid=(...) and block=(...)"),
      std::string::npos);
  EXPECT_NE(
      error_of("// @kforge entry: f\n// @kforge launch: grid=(M+) block=(1)\n" + body).find("k.cpp:2: launch: grid:"),
      std::string::npos);
  EXPECT_NE(error_of("// @kforge entry: f\n// @kforge launch: grid=(1) block=(1) warps=4\n" + body)
                .find("unknown launch field 'warps'"),
            std::string::npos);
  EXPECT_NE(error_of("// @kforge entry: f\n// @kforge entry: g\n" + body).find("a second entry line"),
            std::string::npos);
  EXPECT_NE(error_of("// @kforge entry f\n" + body).find("k.cpp:1: malformed @kforge line"), std::string::npos);
  EXPECT_NE(error_of("// @kforge entry: f\n// @kforge param: B=99999999999999999999\n" + body)
                .find("param B: '99999999999999999999' is not an integer"),
            std::string::npos);
}

TEST(Candidate, HugeLinesAreHandled) {
  const std::string long_comment = "// " + std::string(200000, 'x') + "\n";
  auto c = parse_candidate("// @kforge entry: f\n" + long_comment + "extern \"C\" void f() {}\n", "k.cpp");
  EXPECT_TRUE(c.ok());
  EXPECT_NE(error_of("// @kforge entry: " + std::string(5000, 'f') + "\n").find("longer than 4096"), std::string::npos);
}

// ---- evaluate_launch: a launch line under a task's sizes and the kernel's params --------------

kforge::LaunchSpec launch_of(const std::string& line) {
  auto c = parse_candidate("// @kforge entry: k\n// @kforge launch: " + line + "\nvoid k() {}\n", "k.cu");
  EXPECT_TRUE(c.ok()) << c.error().message;
  return c->launches.at(0);
}

std::string launch_error(const std::string& line, const kforge::Bindings& bindings) {
  auto dims = kforge::evaluate_launch(launch_of(line), bindings);
  if (dims) return "";
  EXPECT_EQ(dims.error().kind, kforge::ErrorKind::invalid_input);
  return dims.error().message;
}

TEST(EvaluateLaunch, CeilDivAndParams) {
  auto dims =
      kforge::evaluate_launch(launch_of("grid=(ceil_div(N,BLOCK)) block=(BLOCK)"), {{"N", 1000}, {"BLOCK", 256}});
  ASSERT_TRUE(dims.ok()) << dims.error().message;
  EXPECT_EQ(dims->grid[0], 4u);
  EXPECT_EQ(dims->grid[1], 1u);
  EXPECT_EQ(dims->grid[2], 1u);
  EXPECT_EQ(dims->block[0], 256u);
  EXPECT_EQ(dims->block[1], 1u);
  EXPECT_EQ(dims->shared_bytes, 0u);
}

TEST(EvaluateLaunch, SeveralDimsAndSharedMemory) {
  auto dims = kforge::evaluate_launch(launch_of("grid=(ceil_div(N,TN), ceil_div(M,TM), B) block=(32, 8) smem=TM*TN*4"),
                                      {{"N", 4096}, {"M", 100}, {"B", 3}, {"TN", 64}, {"TM", 16}});
  ASSERT_TRUE(dims.ok()) << dims.error().message;
  EXPECT_EQ((std::vector<unsigned>{dims->grid[0], dims->grid[1], dims->grid[2]}), (std::vector<unsigned>{64, 7, 3}));
  EXPECT_EQ((std::vector<unsigned>{dims->block[0], dims->block[1], dims->block[2]}), (std::vector<unsigned>{32, 8, 1}));
  EXPECT_EQ(dims->shared_bytes, 16u * 64 * 4);
}

TEST(EvaluateLaunch, RefusesExtentsThatAreNotPositiveOrTooLarge) {
  EXPECT_NE(launch_error("grid=(M) block=(256)", {{"M", 0}}).find("grid.x = M = 0 is not positive"), std::string::npos);
  EXPECT_NE(launch_error("grid=(1, M-8) block=(256)", {{"M", 4}}).find("grid.y = M-8 = -4 is not positive"),
            std::string::npos);
  EXPECT_NE(
      launch_error("grid=(1) block=(B)", {{"B", 2048}}).find("block.x = B = 2048 exceeds the hardware limit 1024"),
      std::string::npos);
  EXPECT_NE(launch_error("grid=(1) block=(64, 32)", {}).find("a block of 64x32x1 = 2048 threads exceeds"),
            std::string::npos);
  EXPECT_NE(
      launch_error("grid=(1, 70000) block=(1)", {}).find("grid.y = 70000 = 70000 exceeds the hardware limit 65535"),
      std::string::npos);
  EXPECT_NE(launch_error("grid=(1, 1, 65536) block=(1)", {}).find("grid.z"), std::string::npos);
  EXPECT_NE(launch_error("grid=(4294967296) block=(1)", {}).find("grid.x"), std::string::npos);
  EXPECT_NE(launch_error("grid=(1) block=(1) smem=-4", {}).find("smem = -4 = -4 is not a byte count"),
            std::string::npos);
  EXPECT_NE(launch_error("grid=(M) block=(1)", {}).find("launch grid=(M) block=(1): "), std::string::npos)
      << "an unbound symbol names the launch line";
  EXPECT_EQ(launch_error("grid=(2147483647, 65535, 65535) block=(1024)", {}), "") << "the limits themselves are fine";
}

}  // namespace
