// The --workers spec parser: what each kind takes, and one clear error for anything else.
#include <gtest/gtest.h>

#include "agent/worker_pool.hpp"

namespace kforge {
namespace {

TEST(WorkerSpecs, EachKindWithItsArguments) {
  auto specs = parse_worker_specs({"local:2,ssh:alice@gpu1:4,ssh:gpu2,slurm:8:--partition=h100 --time=10", "slurm:1"});
  ASSERT_TRUE(specs.ok()) << specs.error().message;
  ASSERT_EQ(specs->size(), 5u);
  EXPECT_EQ((*specs)[0].kind, WorkerSpec::Kind::local);
  EXPECT_EQ((*specs)[0].count, 2);
  EXPECT_EQ((*specs)[1].host, "alice@gpu1");
  EXPECT_EQ((*specs)[1].count, 4);
  EXPECT_EQ((*specs)[2].host, "gpu2");
  EXPECT_EQ((*specs)[2].count, 1);
  EXPECT_EQ((*specs)[3].count, 8);
  EXPECT_EQ((*specs)[3].extra, (std::vector<std::string>{"--partition=h100", "--time=10"}));
  EXPECT_TRUE((*specs)[4].extra.empty());
}

TEST(WorkerSpecs, ACommandTakesTheRestOfItsValueCommasIncluded) {
  auto specs = parse_worker_specs({"local:1,cmd:kubectl exec -i pod-a -- sh -c 'a=1,2; kforge worker'"});
  ASSERT_TRUE(specs.ok()) << specs.error().message;
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[1].kind, WorkerSpec::Kind::command);
  EXPECT_EQ((*specs)[1].command, "kubectl exec -i pod-a -- sh -c 'a=1,2; kforge worker'");
}

TEST(WorkerSpecs, BadSpecsAreOneInvalidInputError) {
  for (const char* bad : {"", "local", "local:0", "local:-1", "local:two", "ssh:", "ssh:gpu1:0", "ssh:-oProxy=x",
                          "slurm:", "slurm:x", "cmd:", "cmd:   ", "gpu:1", "local:1,,local:1", "local:1,"}) {
    auto specs = parse_worker_specs({bad});
    ASSERT_FALSE(specs.ok()) << bad;
    EXPECT_EQ(specs.error().kind, ErrorKind::invalid_input) << bad;
    EXPECT_EQ(specs.error().message.find('\n'), std::string::npos) << bad;
    EXPECT_NE(specs.error().message.find("--workers"), std::string::npos) << specs.error().message;
  }
}

}  // namespace
}  // namespace kforge
