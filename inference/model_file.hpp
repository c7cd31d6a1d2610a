// Internal to inference: what the decoder needs to know of how model_file.cpp stores the
// quantized weights, so that only that file depends on the dtype code.
#pragma once

#include <cstddef>

namespace kforge {

// The bytes of `rows` rows of `cols` weights in Q8_0 blocks (`cols` a multiple of 32), as
// LlamaQ8Weights holds them.
std::size_t q8_0_bytes(std::size_t rows, std::size_t cols);

}  // namespace kforge
