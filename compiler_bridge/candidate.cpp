#include <algorithm>
#include <cctype>
#include <limits>
#include <regex>
#include <set>

#include "compiler_bridge/compiler_bridge.hpp"

namespace kforge {
namespace {

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

// Splits at top-level commas (not inside parentheses).
std::vector<std::string> split_top_level(std::string_view s) {
  std::vector<std::string> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || (s[i] == ',' && depth == 0)) {
      parts.push_back(trim(s.substr(start, i - start)));
      start = i + 1;
    } else if (s[i] == '(') {
      ++depth;
    } else if (s[i] == ')') {
      --depth;
    }
  }
  return parts;
}

Result<std::int64_t> parse_int(const std::string& text) {
  try {
    size_t used = 0;
    long long v = std::stoll(text, &used);
    if (used == text.size()) return static_cast<std::int64_t>(v);
  } catch (const std::exception&) {
  }
  return make_error(ErrorKind::invalid_input, "'{}' is not an integer", text);
}

// "BLOCK=256 in {64,128,256}" or "BLOCK=256"
Result<KernelParam> parse_param(const std::string& text) {
  static const std::regex form(R"(^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(-?[0-9]+)(\s+in\s+\{([^}]*)\})?$)");
  std::smatch m;
  if (!std::regex_match(text, m, form))
    return make_error(ErrorKind::invalid_input, "'{}': expected NAME=VALUE or NAME=VALUE in {{A,B,...}}", text);
  auto value = parse_int(m[2]);
  if (!value) return make_error(ErrorKind::invalid_input, "param {}: {}", m[1].str(), value.error().message);
  KernelParam param{m[1], *value, {}};
  if (m[3].matched) {
    for (const auto& item : split_top_level(m[4].str())) {
      auto v = parse_int(item);
      if (!v) return make_error(ErrorKind::invalid_input, "param {}: {}", param.name, v.error().message);
      param.choices.push_back(*v);
    }
    if (std::find(param.choices.begin(), param.choices.end(), param.value) == param.choices.end())
      return make_error(ErrorKind::invalid_input, "param {}: default {} is not one of its choices", param.name,
                        param.value);
  }
  return param;
}

Result<std::vector<Expr>> parse_expr_list(const std::string& text) {
  std::vector<Expr> out;
  for (const auto& item : split_top_level(text)) {
    auto e = Expr::parse(item);
    if (!e) return e.error();
    out.push_back(*e);
  }
  if (out.empty() || out.size() > 3)
    return make_error(ErrorKind::invalid_input, "'{}': expected 1 to 3 dimensions", text);
  return out;
}

// "grid=(M) block=(BLOCK) smem=(BLOCK/32)*4": key=value fields separated by spaces, where a
// value runs until the next space outside parentheses.
Result<LaunchSpec> parse_launch(const std::string& text) {
  LaunchSpec launch;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == '\t') {
      ++i;
      continue;
    }
    size_t eq = text.find('=', i);
    if (eq == std::string::npos)
      return make_error(ErrorKind::invalid_input, "'{}': expected key=value", text.substr(i));
    std::string key = trim(std::string_view(text).substr(i, eq - i));
    size_t end = eq + 1;
    for (int depth = 0; end < text.size() && (depth > 0 || (text[end] != ' ' && text[end] != '\t')); ++end)
      depth += text[end] == '(' ? 1 : text[end] == ')' ? -1 : 0;
    std::string value = text.substr(eq + 1, end - eq - 1);
    i = end;
    if (key == "grid" || key == "block") {
      std::string inner = value;
      if (inner.size() >= 2 && inner.front() == '(' && inner.back() == ')') inner = inner.substr(1, inner.size() - 2);
      auto dims = parse_expr_list(inner);
      if (!dims) return make_error(ErrorKind::invalid_input, "{}: {}", key, dims.error().message);
      (key == "grid" ? launch.grid : launch.block) = *dims;
    } else if (key == "smem") {
      auto e = Expr::parse(value);
      if (!e) return make_error(ErrorKind::invalid_input, "smem: {}", e.error().message);
      launch.shared_bytes = *e;
    } else {
      return make_error(ErrorKind::invalid_input, "unknown launch field '{}' (known: grid, block, smem)", key);
    }
  }
  if (launch.grid.empty() || launch.block.empty())
    return make_error(ErrorKind::invalid_input, "'{}': a launch needs grid=(...) and block=(...)", text);
  return launch;
}

// Whether `name(` appears as a whole word outside // comments. (A hand loop: std::regex
// recurses per character and overflows the stack on a long line.)
bool defines_function(const std::string& source, const std::string& name) {
  auto word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  size_t line_start = 0;
  while (line_start < source.size()) {
    size_t line_end = source.find('\n', line_start);
    if (line_end == std::string::npos) line_end = source.size();
    std::string_view line(source.data() + line_start, line_end - line_start);
    line = line.substr(0, line.find("//"));
    for (size_t at = line.find(name); at != std::string_view::npos; at = line.find(name, at + 1)) {
      if (at > 0 && word_char(line[at - 1])) continue;
      size_t after = at + name.size();
      while (after < line.size() && (line[after] == ' ' || line[after] == '\t')) ++after;
      if (after < line.size() && line[after] == '(') return true;
    }
    line_start = line_end + 1;
  }
  return false;
}

}  // namespace

Bindings Candidate::param_bindings() const {
  Bindings out;
  for (const auto& p : params) out[p.name] = p.value;
  return out;
}

Result<Candidate> parse_candidate(std::string source, const std::string& origin) {
  static const std::regex header(R"(^\s*//\s*@kforge\s+([A-Za-z_]+)\s*:\s*(.*)$)");
  Candidate candidate;
  std::set<std::string> seen_params;
  size_t line_start = 0;
  for (int line_no = 1; line_start < source.size(); ++line_no) {
    size_t line_end = source.find('\n', line_start);
    if (line_end == std::string::npos) line_end = source.size();
    std::string line = source.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    if (line.find("@kforge") == std::string::npos) continue;

    auto fail = [&](const std::string& what) {
      return make_error(ErrorKind::invalid_input, "{}:{}: {}", origin, line_no, what);
    };
    std::smatch m;
    if (line.size() > 4096) return fail("a @kforge line longer than 4096 characters");
    if (!std::regex_match(line, m, header)) return fail("malformed @kforge line; expected '// @kforge key: value'");
    std::string key = m[1], value = trim(m[2].str());
    if (key == "entry") {
      static const std::regex identifier("^[A-Za-z_][A-Za-z0-9_]*$");
      if (!std::regex_match(value, identifier)) return fail(fmt::format("entry '{}' is not a C identifier", value));
      if (!candidate.entry.empty()) return fail("a second entry line; a kernel has one entry");
      candidate.entry = value;
    } else if (key == "param") {
      auto p = parse_param(value);
      if (!p) return fail(p.error().message);
      if (!seen_params.insert(p->name).second) return fail(fmt::format("param {} declared twice", p->name));
      candidate.params.push_back(*p);
    } else if (key == "launch") {
      auto l = parse_launch(value);
      if (!l) return fail("launch: " + l.error().message);
      candidate.launches.push_back(*l);
    } else if (key == "workspace") {
      auto e = Expr::parse(value);
      if (!e) return fail("workspace: " + e.error().message);
      candidate.workspace_bytes = *e;
    } else if (key == "about") {
      candidate.about = value;
    } else {
      return fail(fmt::format("unknown key '{}' (known: entry, param, launch, workspace, about)", key));
    }
  }
  if (candidate.entry.empty())
    return make_error(ErrorKind::invalid_input, "{}: no '// @kforge entry: NAME' line saying which function to call",
                      origin);
  // The entry must be defined, not only named in the header.
  if (!defines_function(source, candidate.entry))
    return make_error(ErrorKind::invalid_input, "{}: the kernel does not define its entry '{}'", origin,
                      candidate.entry);
  candidate.source = std::move(source);
  return candidate;
}

Result<LaunchDims> evaluate_launch(const LaunchSpec& spec, const Bindings& bindings) {
  // The limits every CUDA device since sm_30 and every AMD GPU share; a device may refuse more
  // (registers, shared memory), which its launch reports.
  constexpr std::int64_t kMaxBlockThreads = 1024, kMaxGridX = 2147483647, kMaxGridYZ = 65535;
  auto describe = [&] {
    auto texts = [](const std::vector<Expr>& dims) {
      std::vector<std::string> out;
      for (const auto& d : dims) out.push_back(d.text());
      return fmt::format("({})", fmt::join(out, ","));
    };
    return fmt::format("launch grid={} block={}", texts(spec.grid), texts(spec.block));
  };
  if (spec.grid.empty() || spec.grid.size() > 3 || spec.block.empty() || spec.block.size() > 3)
    return make_error(ErrorKind::invalid_input, "{}: grid and block need 1 to 3 dimensions", describe());
  LaunchDims dims;
  static constexpr const char* kAxis[] = {"x", "y", "z"};
  for (const auto* part : {&spec.grid, &spec.block}) {
    const bool grid = part == &spec.grid;
    for (size_t i = 0; i < part->size(); ++i) {
      auto value = (*part)[i].eval(bindings);
      if (!value) return make_error(ErrorKind::invalid_input, "{}: {}", describe(), value.error().message);
      const std::string name =
          fmt::format("{}.{} = {} = {}", grid ? "grid" : "block", kAxis[i], (*part)[i].text(), *value);
      if (*value <= 0) return make_error(ErrorKind::invalid_input, "{}: {} is not positive", describe(), name);
      const std::int64_t limit = !grid ? kMaxBlockThreads : i == 0 ? kMaxGridX : kMaxGridYZ;
      if (*value > limit)
        return make_error(ErrorKind::invalid_input, "{}: {} exceeds the hardware limit {}", describe(), name, limit);
      (grid ? dims.grid : dims.block)[i] = static_cast<unsigned>(*value);
    }
  }
  const std::int64_t threads = std::int64_t{dims.block[0]} * dims.block[1] * dims.block[2];
  if (threads > kMaxBlockThreads)
    return make_error(ErrorKind::invalid_input, "{}: a block of {}x{}x{} = {} threads exceeds the hardware limit {}",
                      describe(), dims.block[0], dims.block[1], dims.block[2], threads, kMaxBlockThreads);
  if (spec.shared_bytes) {
    auto bytes = spec.shared_bytes->eval(bindings);
    if (!bytes) return make_error(ErrorKind::invalid_input, "{}: smem: {}", describe(), bytes.error().message);
    // 0 dynamic shared memory is a valid launch; a negative or absurd amount is not.
    if (*bytes < 0 || *bytes > std::numeric_limits<unsigned>::max())
      return make_error(ErrorKind::invalid_input, "{}: smem = {} = {} is not a byte count a launch can take",
                        describe(), spec.shared_bytes->text(), *bytes);
    dims.shared_bytes = static_cast<unsigned>(*bytes);
  }
  return dims;
}

}  // namespace kforge
