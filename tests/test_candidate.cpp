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

}  // namespace
