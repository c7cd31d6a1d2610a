#include <gtest/gtest.h>

#include "common/expr.hpp"

using kforge::Bindings;
using kforge::Expr;

namespace {

std::int64_t eval(const std::string& text, const Bindings& b = {}) {
  auto e = Expr::parse(text);
  EXPECT_TRUE(e.ok()) << e.error().message;
  auto v = e->eval(b);
  EXPECT_TRUE(v.ok()) << v.error().message;
  return v.ok() ? *v : -999;
}

std::string eval_error(const std::string& text, const Bindings& b = {}) {
  auto e = Expr::parse(text);
  if (!e) return e.error().message;
  auto v = e->eval(b);
  return v ? "" : v.error().message;
}

TEST(Expr, ArithmeticPrecedenceAndIntegerDivision) {
  EXPECT_EQ(eval("1 + 2 * 3"), 7);
  EXPECT_EQ(eval("(1 + 2) * 3"), 9);
  EXPECT_EQ(eval("7 / 2"), 3);
  EXPECT_EQ(eval("-7 / 2"), -3);
  EXPECT_EQ(eval("7 % 4"), 3);
  EXPECT_EQ(eval("2 - 3 - 4"), -5);
  EXPECT_EQ(eval("- -3"), 3);
}

TEST(Expr, SymbolsAndFunctions) {
  Bindings b{{"N", 4099}, {"BLOCK", 256}, {"M", 3}};
  EXPECT_EQ(eval("ceil_div(N, BLOCK)", b), 17);
  EXPECT_EQ(eval("ceil_div(4096, BLOCK)", b), 16);
  EXPECT_EQ(eval("M*N*4", b), 3 * 4099 * 4);
  EXPECT_EQ(eval("min(M, N) + max(M, N)", b), 4102);
  EXPECT_EQ(eval("(BLOCK/32)*4", b), 32);
}

TEST(Expr, ComparisonsAndLogic) {
  Bindings b{{"N", 16}};
  EXPECT_EQ(eval("N % 4 == 0", b), 1);
  EXPECT_EQ(eval("N % 3 == 0", b), 0);
  EXPECT_EQ(eval("N >= 16 && N < 17", b), 1);
  EXPECT_EQ(eval("N <= 1 || N != 16", b), 0);
  EXPECT_EQ(eval("!(N > 1)", b), 0);
  EXPECT_EQ(eval("N > 0 && 64 / N == 4", b), 1);
  EXPECT_EQ(eval("0 && 1 / 0"), 0);  // short-circuits past the division by zero
}

TEST(Expr, SymbolsAreListedOnce) {
  auto e = Expr::parse("M*N + ceil_div(N, BLOCK)");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->symbols(), (std::vector<std::string>{"BLOCK", "M", "N"}));
}

TEST(Expr, ErrorsNameTheProblem) {
  EXPECT_NE(eval_error("M*K", {{"M", 1}}).find("unknown symbol 'K'"), std::string::npos);
  EXPECT_NE(eval_error("4 / (N - 4)", {{"N", 4}}).find("division by zero"), std::string::npos);
  EXPECT_NE(eval_error("1 +").find("expected a value"), std::string::npos);
  EXPECT_NE(eval_error("(1 + 2").find("expected ')'"), std::string::npos);
  EXPECT_NE(eval_error("sqrt(4)").find("unknown function 'sqrt'"), std::string::npos);
  EXPECT_NE(eval_error("ceil_div(4)").find("takes two arguments"), std::string::npos);
  EXPECT_NE(eval_error("2 $ 3").find("unexpected '$' at column 3"), std::string::npos);
  EXPECT_NE(eval_error("9223372036854775807 + 1").find("overflow"), std::string::npos);
  EXPECT_NE(eval_error("99999999999999999999").find("too large"), std::string::npos);
}

// Found by tests/fuzz (fuzz_task_toml): 5000 nested parentheses overflowed the parser's stack, and a
// sum of 10000 terms the stack of evaluating it. Both now stop at the length bound.
TEST(Expr, ALongTextIsAnErrorNotAStackOverflow) {
  std::string sum = "N";
  for (int i = 0; i < 10000; ++i) sum += "+N";
  EXPECT_EQ(eval_error(sum), "'N+N+N+N+N+N+N+N+N+N+N+N+N+N+N+N+N+N+N+N+...': longer than 1024 characters");
  EXPECT_NE(eval_error(std::string(5000, '(') + "1" + std::string(5000, ')')).find("longer than 1024"),
            std::string::npos);
  // Up to the bound, as deep as it allows: 511 parentheses, and a chain of 512 operands.
  EXPECT_EQ(eval(std::string(511, '(') + "7" + std::string(511, ')')), 7);
  EXPECT_EQ(eval(sum.substr(0, 1023), {{"N", 2}}), 1024);
}

}  // namespace
