#include "common/expr.hpp"

#include <algorithm>
#include <cctype>
#include <set>

namespace kforge {

struct Expr::Node {
  enum class Kind { number, symbol, unary, binary, call } kind;
  std::int64_t number = 0;
  std::string name;  // symbol, operator ("+", "<=", "neg", "!") or function
  std::vector<std::shared_ptr<const Node>> children;
};

namespace {

using NodePtr = std::shared_ptr<const Expr::Node>;
using Kind = Expr::Node::Kind;

// Parsing recurses once per nesting level, and evaluating once per operand of a chain ("N+N+...
// +N" is a tree as deep as it is long): a bound on the text bounds the stack both take. Real
// formulas are a few dozen characters; a kernel's whole @kforge line may hold 4096.
constexpr std::size_t kMaxTextChars = 1024;

// Binary operators by precedence level, loosest first.
const std::vector<std::vector<std::string>> kLevels = {
    {"||"}, {"&&"}, {"==", "!=", "<=", ">=", "<", ">"}, {"+", "-"}, {"*", "/", "%"}};

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<NodePtr> parse_all() {
    auto node = parse_level(0);
    if (!node) return node;
    skip_space();
    if (pos_ != text_.size()) return fail("unexpected '{}'", text_.substr(pos_, 1));
    return node;
  }

 private:
  template <class... Args>
  Error fail(fmt::format_string<Args...> format, Args&&... args) {
    return make_error(ErrorKind::invalid_input, "'{}': {} at column {}", text_,
                      fmt::format(format, std::forward<Args>(args)...), pos_ + 1);
  }

  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }

  bool take(std::string_view token) {
    skip_space();
    if (text_.substr(pos_, token.size()) != token) return false;
    // "<" must not match the start of "<=", nor "!" the start of "!=".
    if (token.size() == 1 && pos_ + 1 < text_.size() && text_[pos_ + 1] == '=' &&
        std::string_view("<>!=").find(token[0]) != std::string_view::npos)
      return false;
    pos_ += token.size();
    return true;
  }

  Result<NodePtr> parse_level(size_t level) {
    if (level == kLevels.size()) return parse_unary();
    auto left = parse_level(level + 1);
    if (!left) return left;
    for (;;) {
      const std::string* matched = nullptr;
      for (const auto& op : kLevels[level])
        if (take(op)) {
          matched = &op;
          break;
        }
      if (!matched) return left;
      auto right = parse_level(level + 1);
      if (!right) return right;
      left = NodePtr(new Expr::Node{Kind::binary, 0, *matched, {*left, *right}});
    }
  }

  Result<NodePtr> parse_unary() {
    if (take("-") || take("!")) {
      std::string op = text_[pos_ - 1] == '-' ? "neg" : "!";
      auto operand = parse_unary();
      if (!operand) return operand;
      return NodePtr(new Expr::Node{Kind::unary, 0, op, {*operand}});
    }
    return parse_primary();
  }

  Result<NodePtr> parse_primary() {
    skip_space();
    if (pos_ == text_.size()) return fail("expected a value");
    char c = text_[pos_];
    if (take("(")) {
      auto inner = parse_level(0);
      if (!inner) return inner;
      if (!take(")")) return fail("expected ')'");
      return inner;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      std::int64_t value = 0;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
        if (__builtin_mul_overflow(value, 10, &value) || __builtin_add_overflow(value, text_[pos_] - '0', &value))
          return fail("number too large");
        ++pos_;
      }
      return NodePtr(new Expr::Node{Kind::number, value, {}, {}});
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t start = pos_;
      while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_'))
        ++pos_;
      std::string name(text_.substr(start, pos_ - start));
      if (!take("(")) return NodePtr(new Expr::Node{Kind::symbol, 0, name, {}});
      if (name != "ceil_div" && name != "min" && name != "max") {
        pos_ = start;
        return fail("unknown function '{}' (known: ceil_div, min, max)", name);
      }
      std::vector<NodePtr> args;
      for (int i = 0; i < 2; ++i) {
        if (i == 1 && !take(",")) return fail("expected ',' ({} takes two arguments)", name);
        auto arg = parse_level(0);
        if (!arg) return arg;
        args.push_back(*arg);
      }
      if (!take(")")) return fail("expected ')' after the arguments of {}", name);
      return NodePtr(new Expr::Node{Kind::call, 0, name, std::move(args)});
    }
    return fail("unexpected '{}'", text_.substr(pos_, 1));
  }

  std::string_view text_;
  size_t pos_ = 0;
};

Result<std::int64_t> evaluate(const Expr::Node& node, const Bindings& bindings, const std::string& text) {
  auto error = [&](std::string what) { return Error{ErrorKind::invalid_input, fmt::format("'{}': {}", text, what)}; };
  switch (node.kind) {
    case Kind::number:
      return node.number;
    case Kind::symbol: {
      auto it = bindings.find(node.name);
      if (it == bindings.end()) return error(fmt::format("unknown symbol '{}'", node.name));
      return it->second;
    }
    case Kind::unary: {
      auto v = evaluate(*node.children[0], bindings, text);
      if (!v) return v;
      if (node.name == "!") return std::int64_t{*v == 0};
      if (*v == INT64_MIN) return error("overflow");
      return -*v;
    }
    case Kind::binary:
    case Kind::call:
      break;
  }
  auto a = evaluate(*node.children[0], bindings, text);
  if (!a) return a;
  // Short-circuit logic, so "N > 0 && M / N > 2" is safe.
  if (node.name == "&&" && *a == 0) return std::int64_t{0};
  if (node.name == "||" && *a != 0) return std::int64_t{1};
  auto b = evaluate(*node.children[1], bindings, text);
  if (!b) return b;
  std::int64_t x = *a, y = *b, out = 0;
  const std::string& op = node.name;
  if (op == "+" && !__builtin_add_overflow(x, y, &out)) return out;
  if (op == "-" && !__builtin_sub_overflow(x, y, &out)) return out;
  if (op == "*" && !__builtin_mul_overflow(x, y, &out)) return out;
  if (op == "/" || op == "%" || op == "ceil_div") {
    if (y == 0) return error("division by zero");
    if (x == INT64_MIN && y == -1) return error("overflow");
    if (op == "/") return x / y;
    if (op == "%") return x % y;
    return x / y + ((x % y != 0) && ((x < 0) == (y < 0)));
  }
  if (op == "min") return std::min(x, y);
  if (op == "max") return std::max(x, y);
  if (op == "==") return std::int64_t{x == y};
  if (op == "!=") return std::int64_t{x != y};
  if (op == "<") return std::int64_t{x < y};
  if (op == "<=") return std::int64_t{x <= y};
  if (op == ">") return std::int64_t{x > y};
  if (op == ">=") return std::int64_t{x >= y};
  if (op == "&&" || op == "||") return std::int64_t{y != 0};
  return error("overflow");
}

void collect_symbols(const Expr::Node& node, std::set<std::string>& out) {
  if (node.kind == Kind::symbol) out.insert(node.name);
  for (const auto& child : node.children) collect_symbols(*child, out);
}

}  // namespace

Result<Expr> Expr::parse(std::string_view text) {
  if (text.size() > kMaxTextChars)
    return make_error(ErrorKind::invalid_input, "'{}...': longer than {} characters", text.substr(0, 40),
                      kMaxTextChars);
  Parser parser(text);
  auto root = parser.parse_all();
  if (!root) return root.error();
  Expr expr;
  expr.text_ = std::string(text);
  expr.root_ = *root;
  return expr;
}

Result<std::int64_t> Expr::eval(const Bindings& bindings) const {
  return evaluate(*root_, bindings, text_);
}

std::vector<std::string> Expr::symbols() const {
  std::set<std::string> names;
  collect_symbols(*root_, names);
  return {names.begin(), names.end()};
}

}  // namespace kforge
