// One test per kind of mistake in a task folder: each must be reported with the file, the field
// and the value at fault.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "evaluator/evaluator.hpp"

namespace fs = std::filesystem;
using namespace kforge;

namespace {

const std::string kValid = R"toml(name = "t"
category = "activation"
description = "y = x"
flops = "N"
bytes = "8*N"
constraints = ["N >= 1"]
args = [
  { name = "x", type = "f32", role = "in", shape = ["N"], dist = "normal(0, 1)" },
  { name = "y", type = "f32", role = "out", shape = ["N"] },
  { name = "N", type = "i32", role = "size" },
  { name = "alpha", type = "f32", role = "scalar", value = 2.0 },
]
bench = [ { N = 8 } ]
check = [ { N = 1 }, { N = 3 } ]
)toml";

class TaskLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("kforge-tasks-" + std::to_string(getpid())) / "suite";
    fs::remove_all(root_.parent_path());
    dir_ = root_ / "t";
    fs::create_directories(dir_ / "seeds");
    std::ofstream(dir_ / "reference.cpp") << "// @kforge entry: f\nextern \"C\" void f() {}\n";
  }
  void TearDown() override { fs::remove_all(root_.parent_path()); }

  // Writes task.toml with `from` replaced by `to` (which must occur in the valid text).
  std::string load_error(const std::string& from = "", const std::string& to = "") {
    std::string text = kValid;
    if (!from.empty()) {
      size_t at = text.find(from);
      EXPECT_NE(at, std::string::npos) << from;
      if (at != std::string::npos) text.replace(at, from.size(), to);
    }
    std::ofstream(dir_ / "task.toml") << text;
    auto task = load_task(dir_.string());
    return task ? "" : task.error().message;
  }
  std::string file() const { return (dir_ / "task.toml").string(); }

  fs::path root_, dir_;
};

#define EXPECT_CONTAINS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

TEST_F(TaskLoaderTest, ValidTaskLoads) {
  std::ofstream(dir_ / "seeds" / "cpu_b.cpp") << "";
  std::ofstream(dir_ / "seeds" / "cpu_a.cpp") << "";
  ASSERT_EQ(load_error(), "");
  auto task = load_task(dir_.string());
  EXPECT_EQ(task->id(), "suite/t");
  EXPECT_EQ(task->args.size(), 4u);
  EXPECT_EQ(task->size_symbols(), std::vector<std::string>{"N"});
  EXPECT_EQ(task->check_shapes.size(), 2u);
  EXPECT_DOUBLE_EQ(task->atol, 1e-4);
  EXPECT_DOUBLE_EQ(task->args[3].value, 2.0);
  ASSERT_EQ(task->seed_paths.size(), 2u);
  EXPECT_EQ(fs::path(task->seed_paths[0]).filename(), "cpu_a.cpp");
}

TEST_F(TaskLoaderTest, MissingFolderOrFile) {
  EXPECT_CONTAINS(load_task((root_ / "nope").string()).error().message, "no such task folder");
  EXPECT_CONTAINS(load_task(dir_.string()).error().message, "task.toml: missing");
}

TEST_F(TaskLoaderTest, TomlSyntaxErrorHasLineAndColumn) {
  EXPECT_CONTAINS(load_error("category = \"activation\"", "category = activation"), file() + ":2:");
}

TEST_F(TaskLoaderTest, UnknownSymbolInShape) {
  EXPECT_CONTAINS(load_error("role = \"out\", shape = [\"N\"]", "role = \"out\", shape = [\"K\"]"),
                  file() + ": args[1].shape: unknown symbol 'K'");
}

TEST_F(TaskLoaderTest, BadShapeExpression) {
  EXPECT_CONTAINS(load_error("shape = [\"N\"], dist", "shape = [\"N*\"], dist"),
                  file() + ": args[0].shape: 'N*': expected a value");
}

TEST_F(TaskLoaderTest, UnknownType) {
  EXPECT_CONTAINS(load_error("type = \"f32\", role = \"in\"", "type = \"f16x\", role = \"in\""),
                  file() + ": args[0].type: 'f16x' is not a known type");
}

TEST_F(TaskLoaderTest, UnknownRole) {
  EXPECT_CONTAINS(load_error("role = \"in\"", "role = \"input\""), "args[0].role: 'input' is not a role");
}

TEST_F(TaskLoaderTest, UnknownArgKey) {
  EXPECT_CONTAINS(load_error("role = \"size\"", "role = \"size\", min = 1"), "args[2]: unknown key 'min'");
}

TEST_F(TaskLoaderTest, BadDistribution) {
  EXPECT_CONTAINS(load_error("normal(0, 1)", "gauss(0, 1)"), "args[0].dist: 'gauss(0, 1)' is not normal(mean, std)");
  EXPECT_CONTAINS(load_error("normal(0, 1)", "uniform(1, -1)"), "args[0].dist: 'uniform(1, -1)'");
}

TEST_F(TaskLoaderTest, IntegerTensorNeedsAnIntegerDistribution) {
  EXPECT_CONTAINS(load_error("type = \"f32\", role = \"in\"", "type = \"i32\", role = \"in\""),
                  "args[0].dist: 'normal(0, 1)': an i32 tensor takes int(lo, hi)");
}

TEST_F(TaskLoaderTest, ScalarWithoutValue) {
  EXPECT_CONTAINS(load_error(", value = 2.0", ""), "args[3].value: missing");
}

TEST_F(TaskLoaderTest, DuplicateArgName) {
  EXPECT_CONTAINS(load_error("name = \"alpha\"", "name = \"x\""), "args[3].name: 'x' is used twice");
}

TEST_F(TaskLoaderTest, NoOutput) {
  EXPECT_CONTAINS(
      load_error("role = \"out\", shape = [\"N\"] }", "role = \"in\", shape = [\"N\"], dist = \"int(0, 3)\" }"),
      "args: no tensor with role out or inout");
}

TEST_F(TaskLoaderTest, MissingAndUnknownCategory) {
  EXPECT_CONTAINS(load_error("category = \"activation\"\n", ""), file() + ": category: missing");
  EXPECT_CONTAINS(load_error("\"activation\"", "\"activations\""), "category: 'activations' is not one of");
}

TEST_F(TaskLoaderTest, NameMustMatchFolder) {
  EXPECT_CONTAINS(load_error("name = \"t\"", "name = \"u\""), "name: 'u' differs from the folder name 't'");
}

TEST_F(TaskLoaderTest, UnknownTopLevelKeyCatchesTypos) {
  EXPECT_CONTAINS(load_error("bench =", "benchmark ="), file() + ": benchmark: unknown key");
}

TEST_F(TaskLoaderTest, ShapeMissingASize) {
  EXPECT_CONTAINS(load_error("{ N = 8 }", "{ M = 8 }"), file() + ": bench[0]: 'M' is not a size argument");
  EXPECT_CONTAINS(load_error("{ N = 8 }", "{ M = 8 }"), file() + ": bench[0]: no value for 'N'");
}

TEST_F(TaskLoaderTest, ShapeValueOutOfRange) {
  EXPECT_CONTAINS(load_error("{ N = 3 }", "{ N = 0 }"), "check[1].N: expected an integer from 1");
  EXPECT_CONTAINS(load_error("{ N = 3 }", "{ N = \"3\" }"), "check[1].N: expected an integer");
}

TEST_F(TaskLoaderTest, MissingShapes) {
  EXPECT_CONTAINS(load_error("check = [ { N = 1 }, { N = 3 } ]", ""),
                  "check: missing: a list of shapes like [{ N = 1 }]");
}

TEST_F(TaskLoaderTest, ConstraintViolated) {
  EXPECT_CONTAINS(load_error("\"N >= 1\"", "\"N % 2 == 0\""), "check[0]: violates the constraint 'N % 2 == 0'");
}

TEST_F(TaskLoaderTest, FormulaWithUnknownSymbol) {
  EXPECT_CONTAINS(load_error("flops = \"N\"", "flops = \"N*K\""), "flops: unknown symbol 'K'");
  EXPECT_CONTAINS(load_error("bytes = \"8*N\"", "bytes = \"8**N\""), "bytes: '8**N': unexpected '*' at column 3");
}

TEST_F(TaskLoaderTest, RepeatedShape) {
  EXPECT_CONTAINS(load_error("{ N = 3 }", "{ N = 8 }"), "check[1]: repeats the shape N=8");
}

TEST_F(TaskLoaderTest, FormulaThatFailsOnAShapeIsTheTasksFault) {
  EXPECT_CONTAINS(load_error("bytes = \"8*N\"", "bytes = \"8*N/(N-1)\""), "check[0]: '8*N/(N-1)': division by zero");
}

TEST_F(TaskLoaderTest, ShapeTooLargeToAllocate) {
  EXPECT_CONTAINS(load_error("{ N = 8 }", "{ N = 2000000000 }"), "bench[0]: needs 15258 MiB or more of tensors");
}

TEST_F(TaskLoaderTest, ConstraintErrorsNameTheConstraint) {
  EXPECT_CONTAINS(load_error("\"N >= 1\"", "\"N >= \""), "constraints[0]: 'N >= ': expected a value");
}

TEST_F(TaskLoaderTest, UnknownToleranceKey) {
  EXPECT_CONTAINS(load_error("flops", "tolerance = { atl = 1 }\nflops"), "tolerance: unknown key 'atl'");
}

TEST_F(TaskLoaderTest, TaskIdsCannotLeaveTheTasksFolder) {
  EXPECT_CONTAINS(find_task(root_.parent_path().string(), "../suite").error().message, "expected SUITE/NAME");
  EXPECT_CONTAINS(find_task(root_.parent_path().string(), std::string(300, 'a') + "/t").error().message, "no folder");
}

TEST_F(TaskLoaderTest, BadTolerance) {
  EXPECT_CONTAINS(load_error("flops", "tolerance = { atol = -1 }\nflops"), "tolerance.atol: expected a number >= 0");
}

TEST_F(TaskLoaderTest, MissingReference) {
  fs::remove(dir_ / "reference.cpp");
  EXPECT_CONTAINS(load_error(), "reference.cpp: missing");
}

TEST_F(TaskLoaderTest, EveryProblemIsReportedAtOnce) {
  std::string text = kValid;
  text.replace(text.find("\"activation\""), 12, "\"nope\"");
  text.replace(text.find("shape = [\"N\"] }"), 15, "shape = [\"K\"] }");
  text.replace(text.find("{ N = 8 }"), 9, "{ N = -8 }");
  std::ofstream(dir_ / "task.toml") << text;
  std::string message = load_task(dir_.string()).error().message;
  EXPECT_CONTAINS(message, "category: 'nope'");
  EXPECT_CONTAINS(message, "args[1].shape: unknown symbol 'K'");
  EXPECT_CONTAINS(message, "bench[0].N:");
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 2) << message;
}

TEST_F(TaskLoaderTest, SuiteLoadingAndFindTask) {
  std::ofstream(dir_ / "task.toml") << kValid;
  auto tasks = load_tasks(root_.parent_path().string(), "suite");
  ASSERT_TRUE(tasks.ok()) << tasks.error().message;
  EXPECT_EQ(tasks->size(), 1u);
  EXPECT_CONTAINS(load_tasks(root_.parent_path().string(), "other").error().message, "suite 'other': no folder");
  EXPECT_TRUE(find_task(root_.parent_path().string(), "suite/t").ok());
  EXPECT_CONTAINS(find_task(root_.parent_path().string(), "t").error().message, "expected SUITE/NAME");
}

TEST(ShippedTasks, EveryTaskOfTheRepositoryLoads) {
  auto tasks = load_tasks(std::string(KFORGE_SOURCE_DIR) + "/tasks");
  ASSERT_TRUE(tasks.ok()) << tasks.error().message;
  std::vector<std::string> ids;
  for (const auto& t : *tasks) ids.push_back(t.id());
  for (const char* id : {"llm/rmsnorm", "llm/softmax", "llm/gemv"})
    EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << id;
}

TEST(Trampoline, DeclaresTheExactSignature) {
  auto task = find_task(std::string(KFORGE_SOURCE_DIR) + "/tasks", "llm/rmsnorm");
  ASSERT_TRUE(task.ok()) << task.error().message;
  std::string t = trampoline_source(*task, "rmsnorm_f32");
  EXPECT_CONTAINS(t, "extern \"C\" void rmsnorm_f32(const float*, const float*, float*, int, int, float);");
  EXPECT_CONTAINS(t, "extern \"C\" void kforge_call(void* const* a)");
}

}  // namespace
