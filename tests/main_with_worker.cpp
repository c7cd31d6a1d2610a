// main() of the test programs that evaluate kernels: they are their own evaluation worker, as
// kforge is (Worker's default command runs this program with the argument `worker`).
#include <gtest/gtest.h>

#include <cstring>

#include "evaluator/evaluator.hpp"

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "worker") == 0) return kforge::worker_main();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
