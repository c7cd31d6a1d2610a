// One test per kind of mistake in a task folder: each must be reported with the file, the field
// and the value at fault.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <cmath>
#include <cstring>
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

// `dynamic` names the size the kernel library files apart (default M where M is a size).
TEST_F(TaskLoaderTest, DynamicNamesASize) {
  ASSERT_EQ(load_error(), "");
  EXPECT_EQ(problem_dynamic_dim(*load_task(dir_.string())), "");  // no M here
  ASSERT_EQ(load_error("flops = \"N\"", "dynamic = \"N\"\nflops = \"N\""), "");
  EXPECT_EQ(problem_dynamic_dim(*load_task(dir_.string())), "N");
  EXPECT_CONTAINS(load_error("flops = \"N\"", "dynamic = \"K\"\nflops = \"N\""),
                  "dynamic: expected the name of a size argument (one of N)");
  EXPECT_CONTAINS(load_error("flops = \"N\"", "dynamic = 3\nflops = \"N\""), "dynamic: expected the name");
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

// Found by tests/fuzz (fuzz_task_toml): std::regex overflowed the stack on a distribution or a
// name of 20000 characters.
TEST_F(TaskLoaderTest, LongDistributionOrNameIsNoStackOverflow) {
  const std::string zeros(20000, '0');
  EXPECT_CONTAINS(load_error("normal(0, 1)", "normal(0, " + zeros + ")"), "args[0].dist: 'normal(0, 000");
  EXPECT_CONTAINS(load_error("normal(0, 1)", "normal(0, " + zeros + ")"), "' is not normal(mean, std)");
  const std::string name(20000, 'x');
  EXPECT_EQ(load_error("name = \"x\"", "name = \"" + name + "\""), "");
  EXPECT_CONTAINS(load_error("name = \"x\"", "name = \"9" + name + "\""), "args[0].name: missing or not an identifier");
}

TEST_F(TaskLoaderTest, IntegerBoundsMayNameSizes) {
  EXPECT_EQ(load_error("normal(0, 1)", "int(0, N - 1)"), "");
  EXPECT_EQ(load_error("normal(0, 1)", "int(-N, max(1, N / 2))"), "") << "a comma inside the bound";
  EXPECT_CONTAINS(load_error("normal(0, 1)", "int(0, Q - 1)"), "args[0].dist: unknown symbol 'Q'");
  EXPECT_CONTAINS(load_error("normal(0, 1)", "uniform(0, N)"), "args[0].dist: 'uniform(0, N)'")
      << "only int() bounds are expressions";
  EXPECT_CONTAINS(load_error("normal(0, 1)", "int(0, N, 1)"), "is not normal(mean, std)");
  // An empty range at a listed shape is the task's fault, named with the shape.
  EXPECT_CONTAINS(load_error("normal(0, 1)", "int(1, N - 1)"), "draws x from int(1, N - 1), empty at N=1 (1 > 0)");
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

// Found by tests/fuzz (fuzz_task_toml): toml++ turned a float into an integer with undefined
// behaviour when it did not fit; sizes and extents are TOML integers.
TEST_F(TaskLoaderTest, FloatSizeIsNotAnInteger) {
  EXPECT_CONTAINS(load_error("{ N = 8 }", "{ N = 4E96 }"), "bench[0].N: expected an integer from 1 to 2147483647");
  EXPECT_CONTAINS(load_error("{ N = 8 }", "{ N = 8.0 }"), "bench[0].N: expected an integer from 1 to 2147483647");
  EXPECT_CONTAINS(load_error("role = \"out\", shape = [\"N\"]", "role = \"out\", shape = [4E96]"),
                  "args[1].shape: expected a string");
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

// Found by tests/fuzz (fuzz_task_toml): a formula nested 5000 deep overflowed the stack.
TEST_F(TaskLoaderTest, AFormulaTooLongIsAnError) {
  const std::string deep = std::string(5000, '(') + "N" + std::string(5000, ')');
  EXPECT_CONTAINS(load_error("flops = \"N\"", "flops = \"" + deep + "\""),
                  file() + ": flops: '((((((((((((((((((((((((((((((((((((((((...': longer than 1024 characters");
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

TEST_F(TaskLoaderTest, NewDtypesLoadWithTheirSignature) {
  ASSERT_EQ(load_error("{ name = \"x\", type = \"f32\", role = \"in\", shape = [\"N\"], dist = \"normal(0, 1)\" },",
                       "{ name = \"x\", type = \"f32\", role = \"in\", shape = [\"N\"], dist = \"normal(0, 1)\" },\n"
                       "  { name = \"q\", type = \"q8_0\", role = \"in\", shape = [2, \"32*N\"], dist = \"normal(0, 1)\" },\n"
                       "  { name = \"r\", type = \"q4_0\", role = \"in\", shape = [\"32*N\"], dist = \"uniform(-1, 1)\" },\n"
                       "  { name = \"h\", type = \"f16\", role = \"in\", shape = [\"N\"], dist = \"normal(0, 1)\" },\n"
                       "  { name = \"o\", type = \"f16\", role = \"out\", shape = [\"N\"] },"),
            "");
  auto task = load_task(dir_.string());
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->args[1].dtype, DType::q8_0);
  EXPECT_EQ(task->args[2].dtype, DType::q4_0);
  EXPECT_DOUBLE_EQ(task->atol, 1e-2) << "an f16 output: KernelBench's f16 tolerance";
  EXPECT_CONTAINS(trampoline_source(*task, "f"),
                  "extern \"C\" void f(const float*, const void*, const void*, const unsigned short*, unsigned short*, "
                  "float*, int, float);");
  EXPECT_CONTAINS(gpu_entry_declaration(*task, "f"),
                  "__global__ void f(const float*, const void*, const void*, const unsigned short*, unsigned short*, "
                  "float*, int, float);");
}

TEST_F(TaskLoaderTest, QuantizedTensorsAreInputsOnly) {
  EXPECT_CONTAINS(load_error("type = \"f32\", role = \"out\"", "type = \"q4_0\", role = \"out\""),
                  file() + ": args[1].type: q4_0 tensors are inputs only (role in), not out");
}

TEST_F(TaskLoaderTest, QuantizedLastExtentMustBeWholeBlocks) {
  std::string e = load_error("type = \"f32\", role = \"in\"", "type = \"q8_0\", role = \"in\"");
  EXPECT_CONTAINS(e, file() + ": bench[0]: gives x (q8_0) a last extent 'N' = 8, not a multiple of its 32-element blocks");
  EXPECT_CONTAINS(e, file() + ": check[0]: gives x (q8_0) a last extent 'N' = 1");
  EXPECT_EQ(load_error("role = \"in\", shape = [\"N\"]", "role = \"in\", shape = [\"32*N\"]"), "");
}

TEST_F(TaskLoaderTest, ScalarsAreF32OrI32) {
  EXPECT_CONTAINS(load_error("type = \"f32\", role = \"scalar\"", "type = \"f16\", role = \"scalar\""),
                  "args[3].type: a scalar is f32 or i32");
}

float bits_to_float(std::uint32_t x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

TEST(Dtypes, F16ConversionRoundsToNearestEvenAndKeepsSpecials) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_f16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);  // the largest half
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);  // just under the halfway point to 65536
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);  // halfway: rounds to even, which is infinity
  EXPECT_EQ(f32_to_f16(1e10f), 0x7C00);
  EXPECT_EQ(f32_to_f16(INFINITY), 0x7C00);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xFC00);
  const std::uint16_t nan = f32_to_f16(NAN);
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0) << "a NaN stays a NaN, not infinity";
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3C00);      // a tie: to the even neighbour below
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3C02);  // a tie: to the even neighbour above
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3C01);
  // Subnormals: m * 2^-24.
  EXPECT_EQ(f32_to_f16(0x1p-14f), 0x0400);   // the smallest normal
  EXPECT_EQ(f32_to_f16(0x1p-24f), 0x0001);   // the smallest subnormal
  EXPECT_EQ(f32_to_f16(1023 * 0x1p-24f), 0x03FF);
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);   // a tie between 0 and 2^-24: even is 0
  EXPECT_EQ(f32_to_f16(0x1.000002p-25f), 0x0001);
  EXPECT_EQ(f32_to_f16(3 * 0x1p-25f), 0x0002);  // 1.5 * 2^-24: a tie, to the even 2
  EXPECT_EQ(f32_to_f16(-5 * 0x1p-24f), 0x8005);
  EXPECT_EQ(f32_to_f16(1e-30f), 0x0000);
  EXPECT_EQ(f32_to_f16(bits_to_float(0x00000001)), 0x0000);  // an f32 subnormal
  EXPECT_EQ(f32_to_f16(1023.5f * 0x1p-24f), 0x0400) << "rounding up out of the subnormals";

  EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);
  EXPECT_EQ(f16_to_f32(0x03FF), 1023 * 0x1p-24f);
  EXPECT_EQ(f16_to_f32(0x8001), -0x1p-24f);
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x7C00), INFINITY);
  EXPECT_EQ(f16_to_f32(0xFC00), -INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
  EXPECT_EQ(f16_to_f32(0x3555), 0x1.554p-2f);
  // Every half survives the round trip through f32 bit for bit; a signalling NaN comes back quiet
  // (as from vcvtps2ph).
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const bool is_nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
    ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<std::uint16_t>(h))), is_nan ? h | 0x200 : h) << std::hex << h;
  }
}

TEST(Dtypes, Q8_0BlockIsGgmlsLayout) {
  EXPECT_EQ(block_bytes(DType::q8_0), 34);
  EXPECT_EQ(tensor_bytes(DType::q8_0, 4096), 128 * 34);
  float x[64];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);  // amax 16
  for (int j = 32; j < 64; ++j) x[j] = 0;                          // an all-zero block
  unsigned char blocks[68];
  quantize(DType::q8_0, x, blocks, 64);
  // d = 16/127 = 0.1259842..., as a half 0x3008 (= 0.1259765625); q = round(x * 127/16).
  EXPECT_EQ(blocks[0], 0x08);
  EXPECT_EQ(blocks[1], 0x30);
  EXPECT_EQ(static_cast<std::int8_t>(blocks[2 + 0]), -127);   // -16 * 7.9375
  EXPECT_EQ(static_cast<std::int8_t>(blocks[2 + 1]), -119);   // -15 * 7.9375 = -119.06
  EXPECT_EQ(static_cast<std::int8_t>(blocks[2 + 14]), -16);   // -2 * 7.9375 = -15.875
  EXPECT_EQ(static_cast<std::int8_t>(blocks[2 + 16]), 0);
  EXPECT_EQ(static_cast<std::int8_t>(blocks[2 + 31]), 119);
  for (int j = 0; j < 34; ++j) EXPECT_EQ(blocks[34 + j], 0) << "zero block byte " << j;
  float y[64];
  dequantize(DType::q8_0, blocks, y, 64);
  EXPECT_EQ(y[0], -127 * 0.1259765625f);
  EXPECT_EQ(y[1], -119 * 0.1259765625f);
  EXPECT_EQ(y[31], 119 * 0.1259765625f);
  EXPECT_EQ(y[40], 0.0f);
  for (int j = 0; j < 32; ++j) EXPECT_NEAR(y[j], x[j], 0.5 * 16 / 127 + 0.01) << j;
}

TEST(Dtypes, Q4_0BlockIsGgmlsLayout) {
  EXPECT_EQ(block_bytes(DType::q4_0), 18);
  EXPECT_EQ(tensor_bytes(DType::q4_0, 4096), 128 * 18);
  float x[64];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);  // max by magnitude: -16
  for (int j = 32; j < 64; ++j) x[j] = static_cast<float>(j - 32) / 4;  // max by magnitude: +7.75
  unsigned char blocks[36];
  quantize(DType::q4_0, x, blocks, 64);
  // Block 0: d = -16 / -8 = 2 (0x4000); nibble = min(15, trunc(x / 2 + 8.5)); element j in the
  // low nibble of byte j, element j + 16 in the high one.
  EXPECT_EQ(blocks[0], 0x00);
  EXPECT_EQ(blocks[1], 0x40);
  EXPECT_EQ(blocks[2 + 0], 0x80);   // x[0] = -16 -> 0, x[16] = 0 -> 8
  EXPECT_EQ(blocks[2 + 1], 0x91);   // -15 -> trunc(1.0) = 1, 1 -> trunc(9.0) = 9
  EXPECT_EQ(blocks[2 + 2], 0x91);   // -14 -> trunc(1.5) = 1, 2 -> trunc(9.5) = 9
  EXPECT_EQ(blocks[2 + 15], 0xF8);  // -1 -> 8, 15 -> trunc(16) capped at 15
  // Block 1: a positive max: d = 7.75 / -8 = -0.96875 (0xBBC0), and x[32] = 0 gives nibble 8.
  EXPECT_EQ(blocks[18 + 0], 0xC0);
  EXPECT_EQ(blocks[18 + 1], 0xBB);
  EXPECT_EQ(blocks[18 + 2 + 0] & 0x0F, 8);
  EXPECT_EQ(blocks[18 + 2 + 15] >> 4, 0);  // x[63] = 7.75 is the max: (0 - 8) * d = 7.75
  float y[64];
  dequantize(DType::q4_0, blocks, y, 64);
  EXPECT_EQ(y[0], -16.0f);
  EXPECT_EQ(y[1], -14.0f);
  EXPECT_EQ(y[16], 0.0f);
  EXPECT_EQ(y[31], 14.0f);
  EXPECT_EQ(y[63], 7.75f);
  EXPECT_EQ(y[32], 0.0f);
  for (int j = 0; j < 64; ++j) EXPECT_NEAR(y[j], x[j], j < 32 ? 2.0 : 0.97) << j;
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
