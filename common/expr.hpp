// Integer expressions over named symbols: task shapes ("M*N"), byte and FLOP formulas,
// constraints ("N % 4 == 0") and kernel launch lines ("ceil_div(N, BLOCK)").
//
// Grammar, lowest precedence first: ||, &&, == != < <= > >=, + -, * / %, unary - !, and
// primaries: integer literals, symbols [A-Za-z_][A-Za-z0-9_]*, parentheses, and the functions
// ceil_div(a, b), min(a, b), max(a, b). Arithmetic is 64-bit signed; / truncates like C;
// comparisons and logic give 0 or 1. Division by zero and overflow are errors, not UB; so is a
// text longer than 1024 characters.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/common.hpp"

namespace kforge {

using Bindings = std::map<std::string, std::int64_t, std::less<>>;

class Expr {
 public:
  // Parses `text`; the error says what was expected and at which column.
  static Result<Expr> parse(std::string_view text);

  // Evaluates with the given symbol values; an unbound symbol is an error naming it.
  Result<std::int64_t> eval(const Bindings& bindings) const;

  // Every symbol the expression mentions, sorted, without repeats.
  std::vector<std::string> symbols() const;

  const std::string& text() const { return text_; }

  struct Node;

 private:
  std::string text_;
  std::shared_ptr<const Node> root_;
};

}  // namespace kforge
