#include <toml++/toml.h>

#include <cctype>
#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>

#include "task/task.hpp"

namespace fs = std::filesystem;

namespace kforge {
namespace {

const std::set<std::string> kTopLevelKeys = {"name",  "category",  "description", "args",        "bench",
                                             "check", "tolerance", "flops",       "bytes", "constraints",
                                             "baseline", "dynamic"};
// Tensors of one shape (each allocated twice: the reference's copy and the candidate's).
constexpr std::int64_t kMaxTaskBytes = std::int64_t{4} << 30;
const std::set<std::string> kArgKeys = {"name", "type", "role", "shape", "dist", "value"};

// Collects every problem of one task.toml, each prefixed with the file and the field.
class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}
  template <class... Args>
  void add(const std::string& field, fmt::format_string<Args...> format, Args&&... args) {
    lines_.push_back(fmt::format("{}: {}: {}", file_, field, fmt::format(format, std::forward<Args>(args)...)));
  }
  bool empty() const { return lines_.empty(); }
  Error error() const { return Error{ErrorKind::invalid_input, fmt::format("{}", fmt::join(lines_, "\n"))}; }

 private:
  std::string file_;
  std::vector<std::string> lines_;
};

// [A-Za-z_][A-Za-z0-9_]*, by hand: std::regex recurses per character and overflows the stack on
// a name of 20000 characters (tests/fuzz).
bool is_identifier(const std::string& name) {
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  return !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
         std::all_of(name.begin(), name.end(), word);
}

// "normal(0, 1)", "uniform(-1, 1)", "int(0, 4095)", "int(0, V - 1)": bounds of int() may be
// expressions over sizes (checked against the task's sizes by the caller), the others are numbers.
std::optional<Distribution> parse_distribution(const std::string& text) {
  // std::regex recurses per character: a text of 20000 characters overflowed the stack (tests/fuzz).
  if (text.size() > 256) return std::nullopt;
  static const std::regex form(R"(^\s*(normal|uniform|int)\s*\((.*)\)\s*$)");
  std::smatch m;
  if (!std::regex_match(text, m, form)) return std::nullopt;
  Distribution d;
  d.kind = m[1] == "normal"    ? Distribution::Kind::normal
           : m[1] == "uniform" ? Distribution::Kind::uniform
                               : Distribution::Kind::integers;
  // The two arguments, split at the comma outside any parentheses ("int(0, max(1, V) - 1)").
  const std::string args = m[2];
  int depth = 0;
  std::size_t comma = std::string::npos;
  for (std::size_t i = 0; i < args.size(); ++i) {
    depth += args[i] == '(' ? 1 : args[i] == ')' ? -1 : 0;
    if (args[i] == ',' && depth == 0) {
      if (comma != std::string::npos) return std::nullopt;
      comma = i;
    }
  }
  if (comma == std::string::npos) return std::nullopt;
  auto bound = [&](std::string part, double& number, std::optional<Expr>& expr) {
    part.erase(0, part.find_first_not_of(" \t"));
    part.erase(part.find_last_not_of(" \t") + 1);
    static const std::regex numeric(R"(^\s*[-+]?[0-9.]+([eE][-+]?[0-9]+)?\s*$)");
    if (std::regex_match(part, numeric)) {
      try {
        number = std::stod(part);
        return true;
      } catch (const std::exception&) {
        return false;
      }
    }
    if (d.kind != Distribution::Kind::integers) return false;
    auto parsed = Expr::parse(part);
    if (!parsed) return false;
    expr = std::move(*parsed);
    return true;
  };
  if (!bound(args.substr(0, comma), d.a, d.lo) || !bound(args.substr(comma + 1), d.b, d.hi)) return std::nullopt;
  if (d.kind != Distribution::Kind::normal && !d.lo && !d.hi && d.a > d.b) return std::nullopt;
  if (d.kind == Distribution::Kind::normal && d.b < 0) return std::nullopt;
  return d;
}

// An expression over the size symbols, from a TOML string; `key` names it in errors.
std::optional<Expr> parse_formula(const toml::node* node, const std::string& key, const std::set<std::string>& symbols,
                                  Problems& problems) {
  if (!node) return std::nullopt;
  auto text = node->value<std::string>();
  if (!text) {
    problems.add(key, "expected a string expression");
    return std::nullopt;
  }
  auto expr = Expr::parse(*text);
  if (!expr) {
    problems.add(key, "{}", expr.error().message);
    return std::nullopt;
  }
  for (const auto& s : expr->symbols())
    if (!symbols.count(s)) problems.add(key, "unknown symbol '{}'", s);
  return *expr;
}

void load_shapes(const toml::table& table, const std::string& key, const Task& task, std::vector<Bindings>& out,
                 Problems& problems) {
  const toml::array* shapes = table.get_as<toml::array>(key);
  if (!shapes || shapes->empty()) {
    std::vector<std::string> example;
    for (const auto& s : task.size_symbols()) example.push_back(s + " = 1");
    problems.add(key, "missing: a list of shapes like [{{ {} }}]", fmt::join(example, ", "));
    return;
  }
  const auto symbols = task.size_symbols();
  for (size_t i = 0; i < shapes->size(); ++i) {
    std::string field = fmt::format("{}[{}]", key, i);
    const toml::table* shape = (*shapes)[i].as_table();
    if (!shape) {
      problems.add(field, "expected a table like {{ N = 4096 }}");
      continue;
    }
    Bindings dims;
    for (const auto& [k, v] : *shape) {
      std::string name(k.str());
      // value_exact: toml++'s value<int64_t>() casts a float out of its range with undefined behaviour.
      auto value = v.value_exact<std::int64_t>();
      if (std::find(symbols.begin(), symbols.end(), name) == symbols.end())
        problems.add(field, "'{}' is not a size argument of the task", name);
      else if (!value || *value < 1 || *value > INT32_MAX)
        problems.add(field + "." + name, "expected an integer from 1 to {}", INT32_MAX);
      else
        dims[name] = *value;
    }
    for (const auto& s : symbols)
      if (!shape->contains(s)) problems.add(field, "no value for '{}'", s);
    if (dims.size() != symbols.size()) continue;
    // Everything the harness will evaluate for this shape must evaluate now, so that a task's
    // mistake is reported here and never blamed on a kernel later.
    // Expressions with an unknown symbol were reported once already, not again per shape.
    auto evaluable = [&](const Expr& e) {
      const auto used = e.symbols();
      return std::all_of(used.begin(), used.end(), [&](const std::string& s) { return dims.count(s) > 0; });
    };
    for (const auto& c : task.constraints) {
      if (!evaluable(c)) continue;
      auto holds = c.eval(dims);
      if (!holds)
        problems.add(field, "constraint {}", holds.error().message);
      else if (*holds == 0)
        problems.add(field, "violates the constraint '{}'", c.text());
    }
    for (const auto* formula : {&task.flops, &task.bytes})
      if (*formula && evaluable(**formula))
        if (auto v = (*formula)->eval(dims); !v) problems.add(field, "{}", v.error().message);
    std::int64_t total_bytes = 0;
    bool extents_ok = true;
    for (const auto& arg : task.args) {
      std::int64_t elements = 1;
      for (const auto& dim : arg.shape) {
        if (!evaluable(dim)) {
          extents_ok = false;
          continue;
        }
        auto extent = dim.eval(dims);
        if (!extent)
          problems.add(field, "{} extent {}", arg.name, extent.error().message);
        else if (*extent < 0)
          problems.add(field, "gives {} a negative extent '{}' = {}", arg.name, dim.text(), *extent);
        else if (__builtin_mul_overflow(elements, *extent, &elements) || elements > kMaxTaskBytes)
          elements = kMaxTaskBytes;
        extents_ok = extents_ok && extent && *extent >= 0;
      }
      // (a partial block counts whole here; block_problem reports it)
      total_bytes += tensor_bytes(arg.dtype, elements + block_elements(arg.dtype) - 1);
    }
    if (extents_ok)
      if (auto why = block_problem(task, dims)) problems.add(field, "{}", *why);
    if (auto why = range_problem(task, dims)) problems.add(field, "{}", *why);
    if (total_bytes >= kMaxTaskBytes)
      problems.add(field, "needs {} MiB or more of tensors; the limit is {} MiB", total_bytes >> 20,
                   kMaxTaskBytes >> 20);
    for (const auto* list : {&task.check_shapes, &task.bench_shapes})
      if (std::find(list->begin(), list->end(), dims) != list->end())
        problems.add(field, "repeats the shape {} (bench and check shapes must all differ)", shape_label(dims));
    out.push_back(dims);
  }
}

void load_args(const toml::table& table, Task& task, Problems& problems) {
  const toml::array* args = table.get_as<toml::array>("args");
  if (!args || args->empty()) {
    problems.add("args", "missing: the ordered argument list");
    return;
  }
  // Sizes first, so shapes may name a size declared after the tensor.
  std::set<std::string> sizes;
  for (const auto& node : *args)
    if (const auto* a = node.as_table(); a && a->get("role") && a->get("role")->value<std::string>() == "size")
      if (auto n = a->get("name") ? a->get("name")->value<std::string>() : std::nullopt) sizes.insert(*n);

  std::set<std::string> names;
  for (size_t i = 0; i < args->size(); ++i) {
    std::string field = fmt::format("args[{}]", i);
    const toml::table* a = (*args)[i].as_table();
    if (!a) {
      problems.add(field, "expected a table {{ name = ..., type = ..., role = ... }}");
      continue;
    }
    for (const auto& [k, v] : *a)
      if (!kArgKeys.count(std::string(k.str())))
        problems.add(field, "unknown key '{}' (known: name, type, role, shape, dist, value)", k.str());
    TaskArg arg;
    auto name = a->get("name") ? a->get("name")->value<std::string>() : std::nullopt;
    if (!name || !is_identifier(*name)) {
      problems.add(field + ".name", "missing or not an identifier");
    } else {
      arg.name = *name;
      if (!names.insert(arg.name).second) problems.add(field + ".name", "'{}' is used twice", arg.name);
    }
    auto type = a->get("type") ? a->get("type")->value<std::string>() : std::nullopt;
    if (auto dtype = dtype_from_name(type.value_or("")))
      arg.dtype = *dtype;
    else
      problems.add(field + ".type", "'{}' is not a known type (f32, i32, f16, q8_0, q4_0)", type.value_or(""));

    auto role = a->get("role") ? a->get("role")->value<std::string>() : std::nullopt;
    static const std::map<std::string, ArgRole> roles = {{"in", ArgRole::in},
                                                         {"out", ArgRole::out},
                                                         {"inout", ArgRole::inout},
                                                         {"size", ArgRole::size},
                                                         {"scalar", ArgRole::scalar}};
    if (auto it = role ? roles.find(*role) : roles.end(); it != roles.end())
      arg.role = it->second;
    else
      problems.add(field + ".role", "'{}' is not a role (in, out, inout, size, scalar)", role.value_or(""));

    if (arg.is_tensor()) {
      if (is_quantized(arg.dtype) && arg.role != ArgRole::in)
        problems.add(field + ".type", "{} tensors are inputs only (role in), not {}", dtype_name(arg.dtype),
                     role.value_or(""));
      const toml::array* shape = a->get_as<toml::array>("shape");
      if (!shape || shape->empty())
        problems.add(field + ".shape", "missing: a tensor needs a shape like [\"M\", \"N\"]");
      for (size_t d = 0; shape && d < shape->size(); ++d) {
        auto text = (*shape)[d].value<std::string>();
        if (auto n = (*shape)[d].value_exact<std::int64_t>()) text = std::to_string(*n);
        auto expr = text ? Expr::parse(*text) : Result<Expr>(make_error(ErrorKind::invalid_input, "expected a string"));
        if (!expr) {
          problems.add(field + ".shape", "{}", expr.error().message);
          continue;
        }
        for (const auto& s : expr->symbols())
          if (!sizes.count(s)) problems.add(field + ".shape", "unknown symbol '{}'", s);
        arg.shape.push_back(*expr);
      }
      if (arg.role != ArgRole::out) {
        auto dist_text = a->get("dist") ? a->get("dist")->value<std::string>() : std::nullopt;
        auto dist = dist_text ? parse_distribution(*dist_text) : std::nullopt;
        if (!dist_text)
          problems.add(field + ".dist", "missing: how to fill it, e.g. \"normal(0, 1)\"");
        else if (!dist)
          problems.add(field + ".dist", "'{}' is not normal(mean, std), uniform(lo, hi) or int(lo, hi)", *dist_text);
        else if (arg.dtype == DType::i32 && dist->kind != Distribution::Kind::integers)
          problems.add(field + ".dist", "'{}': an i32 tensor takes int(lo, hi)", *dist_text);
        else
          arg.dist = *dist;
        for (const auto* bound : {&arg.dist.lo, &arg.dist.hi})
          if (*bound)
            for (const auto& s : (*bound)->symbols())
              if (!sizes.count(s)) problems.add(field + ".dist", "unknown symbol '{}'", s);
      }
    } else if (arg.role == ArgRole::size) {
      if (arg.dtype != DType::i32) problems.add(field + ".type", "a size must be i32");
    } else if (arg.role == ArgRole::scalar) {
      if (arg.dtype != DType::f32 && arg.dtype != DType::i32) problems.add(field + ".type", "a scalar is f32 or i32");
      auto value = a->get("value") ? a->get("value")->value<double>() : std::nullopt;
      if (!value)
        problems.add(field + ".value", "missing: a scalar needs a value");
      else
        arg.value = *value;
    }
    task.args.push_back(std::move(arg));
  }
  bool has_output = std::any_of(task.args.begin(), task.args.end(),
                                [](const TaskArg& a) { return a.role == ArgRole::out || a.role == ArgRole::inout; });
  if (!has_output) problems.add("args", "no tensor with role out or inout: nothing to check");
}

}  // namespace

std::vector<std::string> Task::size_symbols() const {
  std::vector<std::string> out;
  for (const auto& a : args)
    if (a.role == ArgRole::size) out.push_back(a.name);
  return out;
}

std::string shape_label(const Bindings& dims) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : dims) parts.push_back(fmt::format("{}={}", k, v));
  return fmt::format("{}", fmt::join(parts, ","));
}

const std::set<std::string>& task_categories() {
  static const std::set<std::string> categories = {
      "activation", "normalization", "reduction", "pooling", "matmul",    "convolution", "loss", "index",
      "resize",     "fuse",          "math",      "optimizer", "attention", "broadcast",   "quant"};
  return categories;
}

Result<Task> load_task(const std::string& dir) {
  const fs::path folder = fs::path(dir).lexically_normal();
  const std::string file = (folder / "task.toml").string();
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return make_error(ErrorKind::invalid_input, "{}: no such task folder", dir);
  if (!fs::is_regular_file(file, ec)) return make_error(ErrorKind::invalid_input, "{}: missing", file);

  toml::table table;
  try {
    table = toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    return make_error(ErrorKind::invalid_input, "{}:{}:{}: {}", file, e.source().begin.line, e.source().begin.column,
                      e.description());
  }

  Problems problems(file);
  Task task;
  task.dir = folder.string();
  task.name = folder.filename().string();
  task.suite = folder.parent_path().filename().string();

  for (const auto& [k, v] : table)
    if (!kTopLevelKeys.count(std::string(k.str())))
      problems.add(std::string(k.str()), "unknown key (known: {})", fmt::join(kTopLevelKeys, ", "));
  auto name = table["name"].value<std::string>();
  if (!name)
    problems.add("name", "missing");
  else if (*name != task.name)
    problems.add("name", "'{}' differs from the folder name '{}'", *name, task.name);
  auto category = table["category"].value<std::string>();
  if (!category)
    problems.add("category", "missing");
  else if (!task_categories().count(*category))
    problems.add("category", "'{}' is not one of {}", *category, fmt::join(task_categories(), ", "));
  else
    task.category = *category;
  auto description = table["description"].value<std::string>();
  if (!description || description->empty())
    problems.add("description", "missing: one paragraph of semantics");
  else
    task.description = *description;

  load_args(table, task, problems);
  const auto sizes = task.size_symbols();
  const std::set<std::string> size_set(sizes.begin(), sizes.end());

  if (const toml::node* node = table.get("constraints")) {
    const toml::array* list = node->as_array();
    if (!list) problems.add("constraints", "expected a list of expressions like [\"N % 4 == 0\"]");
    for (size_t i = 0; list && i < list->size(); ++i)
      if (auto c = parse_formula(list->get(i), fmt::format("constraints[{}]", i), size_set, problems))
        task.constraints.push_back(*c);
  }
  // The size that varies from call to call at run time; the kernel library files it apart and
  // serves its nearest tuned value (the token count M by default).
  task.dynamic_dim = size_set.count("M") ? "M" : "";
  if (const toml::node* node = table.get("dynamic")) {
    const auto dim = node->value<std::string>();
    if (!dim || !size_set.count(*dim))
      problems.add("dynamic", "expected the name of a size argument (one of {})", fmt::join(sizes, ", "));
    else
      task.dynamic_dim = *dim;
  }
  task.flops = parse_formula(table.get("flops"), "flops", size_set, problems);
  task.bytes = parse_formula(table.get("bytes"), "bytes", size_set, problems);

  // Tolerance: f32 defaults 1e-4/1e-4 and f16 1e-2/1e-2 (KernelBench's); with both, the looser.
  // Integer outputs compare exactly.
  auto has_output = [&](DType dtype) {
    return std::any_of(task.args.begin(), task.args.end(), [&](const TaskArg& a) {
      return (a.role == ArgRole::out || a.role == ArgRole::inout) && a.dtype == dtype;
    });
  };
  task.atol = task.rtol = has_output(DType::f16) ? 1e-2 : has_output(DType::f32) ? 1e-4 : 0.0;
  if (const toml::node* tol = table.get("tolerance")) {
    const toml::table* t = tol->as_table();
    if (!t) problems.add("tolerance", "expected {{ atol = ..., rtol = ... }}");
    for (const auto& [k, v] : t ? *t : toml::table{})
      if (k.str() != "atol" && k.str() != "rtol")
        problems.add("tolerance", "unknown key '{}' (known: atol, rtol)", k.str());
    for (const char* key : {"atol", "rtol"}) {
      if (!t || !t->contains(key)) continue;
      auto v = (*t)[key].value<double>();
      if (!v || *v < 0)
        problems.add(fmt::format("tolerance.{}", key), "expected a number >= 0");
      else
        (std::string(key) == "atol" ? task.atol : task.rtol) = *v;
    }
  }

  load_shapes(table, "bench", task, task.bench_shapes, problems);
  load_shapes(table, "check", task, task.check_shapes, problems);

  if (const toml::node* node = table.get("baseline")) {
    const toml::table* b = node->as_table();
    if (!b) problems.add("baseline", "expected {{ cpu = \"FILE\", cpu_libs = [\"LIBRARY\", ...], cuda = \"FILE\" }}");
    for (const auto& [k, v] : b ? *b : toml::table{}) {
      if (k.str() == "cpu" || k.str() == "cuda") {
        const auto path = v.value<std::string>();
        if (!path || path->empty() || !fs::is_regular_file(folder / *path))
          problems.add("baseline." + std::string(k.str()), "expected a file of the task folder");
        else
          (k.str() == "cpu" ? task.cpu_baseline_path : task.cuda_baseline_path) = (folder / *path).string();
      } else if (k.str() == "cpu_libs") {
        const toml::array* libs = v.as_array();
        for (std::size_t i = 0; libs && i < libs->size(); ++i) {
          const auto name = (*libs)[i].value<std::string>();
          const bool plain = name && !name->empty() && std::all_of(name->begin(), name->end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
          });
          if (plain) task.cpu_baseline_libraries.push_back(*name);
          else problems.add("baseline.cpu_libs", "expected library names such as \"blas\"");
        }
        if (!libs) problems.add("baseline.cpu_libs", "expected an array of library names");
      } else {
        problems.add("baseline", "unknown key '{}' (known: cpu, cpu_libs, cuda)", k.str());
      }
    }
  }

  task.reference_path = (folder / "reference.cpp").string();
  if (!fs::exists(task.reference_path))
    problems.add("reference.cpp", "missing: the task needs a reference implementation");
  if (fs::is_directory(folder / "seeds")) {
    for (const auto& entry : fs::directory_iterator(folder / "seeds"))
      if (entry.is_regular_file()) task.seed_paths.push_back(entry.path().string());
    std::sort(task.seed_paths.begin(), task.seed_paths.end());
  }
  if (!problems.empty()) return problems.error();
  return task;
}

std::optional<std::string> block_problem(const Task& task, const Bindings& dims) {
  for (const auto& arg : task.args) {
    if (!is_quantized(arg.dtype) || arg.shape.empty()) continue;
    auto last = arg.shape.back().eval(dims);
    if (last && *last % block_elements(arg.dtype) != 0)
      return fmt::format("gives {} ({}) a last extent '{}' = {}, not a multiple of its {}-element blocks", arg.name,
                         dtype_name(arg.dtype), arg.shape.back().text(), *last, block_elements(arg.dtype));
  }
  return std::nullopt;
}

Distribution Distribution::at(const Bindings& dims) const {
  Distribution d = *this;
  if (lo)
    if (auto v = lo->eval(dims)) d.a = static_cast<double>(*v);
  if (hi)
    if (auto v = hi->eval(dims)) d.b = static_cast<double>(*v);
  return d;
}

std::optional<std::string> range_problem(const Task& task, const Bindings& dims) {
  for (const auto& arg : task.args) {
    const Distribution& d = arg.dist;
    if (!d.lo && !d.hi) continue;
    for (const auto* bound : {&d.lo, &d.hi})
      if (*bound)
        if (auto v = (*bound)->eval(dims); !v) return fmt::format("{}'s dist: {}", arg.name, v.error().message);
    const Distribution here = d.at(dims);
    if (here.a > here.b)
      return fmt::format("draws {} from int({}, {}), empty at {} ({} > {})", arg.name,
                         d.lo ? d.lo->text() : fmt::format("{}", d.a), d.hi ? d.hi->text() : fmt::format("{}", d.b),
                         shape_label(dims), here.a, here.b);
  }
  return std::nullopt;
}

std::string problem_dtype(const Task& task) {
  for (const auto& arg : task.args)
    if (arg.is_tensor()) return dtype_name(arg.dtype);
  return "f32";
}

std::string problem_dynamic_dim(const Task& task) { return task.dynamic_dim; }

std::optional<std::string> shape_problem(const Task& task, const Bindings& dims) {
  const auto symbols = task.size_symbols();
  for (const auto& [name, value] : dims)
    if (std::find(symbols.begin(), symbols.end(), name) == symbols.end())
      return fmt::format("'{}' is not a size of {} (its sizes: {})", name, task.id(), fmt::join(symbols, ", "));
  for (const auto& s : symbols) {
    auto it = dims.find(s);
    if (it == dims.end()) return fmt::format("no value for '{}' (the sizes of {}: {})", s, task.id(), fmt::join(symbols, ", "));
    if (it->second < 1 || it->second > INT32_MAX)
      return fmt::format("{} = {}: expected an integer from 1 to {}", s, it->second, INT32_MAX);
  }
  for (const auto& c : task.constraints) {
    auto holds = c.eval(dims);
    if (!holds) return fmt::format("constraint {}", holds.error().message);
    if (*holds == 0) return fmt::format("violates the constraint '{}' of {}", c.text(), task.id());
  }
  if (auto why = range_problem(task, dims)) return why;
  return block_problem(task, dims);
}

Result<std::vector<Task>> load_tasks(const std::string& root, const std::string& suite) {
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    return make_error(ErrorKind::invalid_input, "{}: no tasks directory (set --tasks-dir or KFORGE_TASKS_DIR)", root);
  std::vector<fs::path> suites;
  if (!suite.empty()) {
    if (suite.find('/') != std::string::npos || suite.front() == '.' || !fs::is_directory(fs::path(root) / suite, ec))
      return make_error(ErrorKind::invalid_input, "suite '{}': no folder {}/{}", suite, root, suite);
    suites.push_back(fs::path(root) / suite);
  } else {
    for (const auto& e : fs::directory_iterator(root))
      if (e.is_directory()) suites.push_back(e.path());
  }
  std::vector<Task> tasks;
  std::vector<std::string> errors;
  for (const auto& s : suites)
    for (const auto& e : fs::directory_iterator(s)) {
      if (!e.is_directory()) continue;
      auto task = load_task(e.path().string());
      if (task)
        tasks.push_back(std::move(*task));
      else
        errors.push_back(task.error().message);
    }
  if (!errors.empty()) return Error{ErrorKind::invalid_input, fmt::format("{}", fmt::join(errors, "\n"))};
  std::sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return a.id() < b.id(); });
  return tasks;
}

Result<Task> find_task(const std::string& root, const std::string& id) {
  static const std::regex form("^[A-Za-z0-9_][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*$");
  if (!std::regex_match(id, form))
    return make_error(ErrorKind::invalid_input, "task '{}': expected SUITE/NAME, e.g. llm/rmsnorm", id);
  std::error_code ec;
  if (!fs::is_directory(fs::path(root) / id, ec))
    return make_error(ErrorKind::invalid_input, "task '{}': no folder {}/{}", id, root, id);
  return load_task((fs::path(root) / id).string());
}

bool is_seed_for(const std::string& backend, const std::string& file_name) {
  const auto conventions = kernel_conventions(backend);
  return conventions && conventions->is_seed(file_name);
}

}  // namespace kforge
