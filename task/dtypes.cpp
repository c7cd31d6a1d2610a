// Tensor element types: names, storage sizes, f16 conversion and ggml's Q8_0 / Q4_0 blocks.
#include <cmath>
#include <cstring>

#include "task/task.hpp"

namespace kforge {

namespace {
constexpr int kBlock = 32;                       // QK8_0 == QK4_0
constexpr int kQ8Bytes = 2 + kBlock;             // sizeof(block_q8_0)
constexpr int kQ4Bytes = 2 + kBlock / 2;         // sizeof(block_q4_0)

void store_f16(unsigned char* p, std::uint16_t bits) {
  std::memcpy(p, &bits, 2);  // little-endian, as ggml stores ggml_half on x86 and every GPU
}
std::uint16_t load_f16(const unsigned char* p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, 2);
  return bits;
}
}  // namespace

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::i32:
      return "i32";
    case DType::f16:
      return "f16";
    case DType::q8_0:
      return "q8_0";
    case DType::q4_0:
      return "q4_0";
  }
  return "?";
}

std::optional<DType> dtype_from_name(const std::string& name) {
  for (DType d : {DType::f32, DType::i32, DType::f16, DType::q8_0, DType::q4_0})
    if (name == dtype_name(d)) return d;
  return std::nullopt;
}

bool is_quantized(DType dtype) {
  return dtype == DType::q8_0 || dtype == DType::q4_0;
}

std::int64_t block_elements(DType dtype) {
  return is_quantized(dtype) ? kBlock : 1;
}

std::int64_t block_bytes(DType dtype) {
  switch (dtype) {
    case DType::f16:
      return 2;
    case DType::q8_0:
      return kQ8Bytes;
    case DType::q4_0:
      return kQ4Bytes;
    default:
      return 4;
  }
}

std::int64_t tensor_bytes(DType dtype, std::int64_t elements) {
  return elements / block_elements(dtype) * block_bytes(dtype);
}

std::uint16_t f32_to_f16(float value) {
  std::uint32_t x;
  std::memcpy(&x, &value, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000, exponent = (x >> 23) & 0xFF;
  std::uint32_t mantissa = x & 0x7FFFFF;
  if (exponent == 0xFF)  // infinity, or NaN kept quiet with the top of its payload
    return static_cast<std::uint16_t>(sign | 0x7C00 | (mantissa ? 0x200 | (mantissa >> 13) : 0));
  const int e = static_cast<int>(exponent) - 127 + 15;  // the half's biased exponent
  if (e >= 31) return static_cast<std::uint16_t>(sign | 0x7C00);  // too large: infinity
  std::uint32_t half, rest, halfway;
  if (e <= 0) {                                        // a half subnormal (or zero): m * 2^-24
    if (e < -10) return static_cast<std::uint16_t>(sign);  // under 2^-25: rounds to zero
    mantissa |= 0x800000;
    const int shift = 14 - e;
    half = mantissa >> shift;
    rest = mantissa & ((1u << shift) - 1);
    halfway = 1u << (shift - 1);
  } else {
    half = (static_cast<std::uint32_t>(e) << 10) | (mantissa >> 13);
    rest = mantissa & 0x1FFF;
    halfway = 0x1000;
  }
  if (rest > halfway || (rest == halfway && (half & 1))) ++half;  // a carry may reach infinity: right
  return static_cast<std::uint16_t>(sign | half);
}

float f16_to_f32(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000) << 16, exponent = (bits >> 10) & 0x1F,
                      mantissa = bits & 0x3FF;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in f32
    const float v = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -v : v;
  }
  const std::uint32_t x =
      exponent == 0x1F ? sign | 0x7F800000 | (mantissa << 13) : sign | ((exponent + 112) << 23) | (mantissa << 13);
  float out;
  std::memcpy(&out, &x, 4);
  return out;
}

void quantize(DType dtype, const float* values, void* blocks, std::int64_t elements) {
  auto* out = static_cast<unsigned char*>(blocks);
  for (std::int64_t b = 0; b < elements / kBlock; ++b) {
    const float* x = values + b * kBlock;
    if (dtype == DType::q8_0) {  // quantize_row_q8_0_ref
      unsigned char* block = out + b * kQ8Bytes;
      float amax = 0.0f;
      for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
      const float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
      store_f16(block, f32_to_f16(d));
      for (int j = 0; j < kBlock; ++j) {
        const auto q = static_cast<std::int8_t>(std::roundf(x[j] * id));
        std::memcpy(block + 2 + j, &q, 1);
      }
    } else {  // quantize_row_q4_0_ref
      unsigned char* block = out + b * kQ4Bytes;
      float amax = 0.0f, max = 0.0f;  // the value of largest magnitude, with its sign
      for (int j = 0; j < kBlock; ++j)
        if (amax < std::fabs(x[j])) {
          amax = std::fabs(x[j]);
          max = x[j];
        }
      const float d = max / -8, id = d != 0 ? 1.0f / d : 0.0f;
      store_f16(block, f32_to_f16(d));
      for (int j = 0; j < kBlock / 2; ++j) {
        const auto lo = std::min<std::uint8_t>(15, static_cast<std::uint8_t>(static_cast<std::int8_t>(x[j] * id + 8.5f)));
        const auto hi =
            std::min<std::uint8_t>(15, static_cast<std::uint8_t>(static_cast<std::int8_t>(x[j + 16] * id + 8.5f)));
        block[2 + j] = static_cast<unsigned char>(lo | (hi << 4));
      }
    }
  }
}

void dequantize(DType dtype, const void* blocks, float* values, std::int64_t elements) {
  const auto* in = static_cast<const unsigned char*>(blocks);
  for (std::int64_t b = 0; b < elements / kBlock; ++b) {
    float* y = values + b * kBlock;
    if (dtype == DType::q8_0) {  // dequantize_row_q8_0
      const unsigned char* block = in + b * kQ8Bytes;
      const float d = f16_to_f32(load_f16(block));
      for (int j = 0; j < kBlock; ++j) {
        std::int8_t q;
        std::memcpy(&q, block + 2 + j, 1);
        y[j] = q * d;
      }
    } else {  // dequantize_row_q4_0
      const unsigned char* block = in + b * kQ4Bytes;
      const float d = f16_to_f32(load_f16(block));
      for (int j = 0; j < kBlock / 2; ++j) {
        y[j] = ((block[2 + j] & 0x0F) - 8) * d;
        y[j + 16] = ((block[2 + j] >> 4) - 8) * d;
      }
    }
  }
}

}  // namespace kforge
