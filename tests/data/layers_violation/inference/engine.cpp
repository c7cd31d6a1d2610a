// A deliberate violation for the layers.violation test: the inference core including the harness.
#include "task/task.hpp"
#include "evaluator/evaluator.hpp"
