// Allowed: task on compiler_bridge.
#include "compiler_bridge/compiler_bridge.hpp"
