// The algorithm of every level's kernels (linear_kernels.hpp), written once over a vector type V
// that each linear_kernels_<level>.cpp defines:
//
//   V::width                     floats per register
//   V::zero(), V::add(a, b)      registers of f32
//   V::mul_add(a, b, c)          a * b + c (fused where the level has FMA)
//   V::load(const float*)        `width` activations
//   V::load(const S*)            `width` stored weights widened to f32, S = uint16_t (f16 via
//                                V::half, bf16 via V::brain) or int8_t
//   V::store(float*, r), V::sum(r)   the lanes back to memory / added in a fixed order
//   V::mul(a, b), V::splat_half(bits)   a product; one f16 value widened to every lane
//   V::ints, V::bytes(const uint8_t* p)  int32 lanes; the bytes p[0 .. width - 1] in them
//   V::bits(q, shift, count)     lanes (q >> shift) & (2^count - 1)
//   V::word_bits(w, first)       lanes (w >> (first + l)) & 1 of one uint32_t w
//   V::combine(low, high, shift) lanes low | high << shift
//   V::to_f32(q, offset)         lanes q - offset as f32 (exact: small integers)
//
// Included inside an unnamed namespace by each level, so nothing here has external linkage.
//
// A weight row is read once for all activation rows (decode streams each weight byte once per
// step); two registers per row hide the latency of the dependent adds.
//
// Every weight type takes the same arithmetic on the same values: the levels are built with
// -ffp-contract=off (src/CMakeLists.txt), so V::mul_add is the only fused multiply-add and the
// scalar tails below are a product and a sum for f16, bf16, int8 and f32 weights alike.

struct Half {};   // f16 bits in uint16_t
struct Brain {};  // bf16 bits in uint16_t
struct Int8 {};
struct Single {};  // f32

inline float scalar(Single, float value) { return value; }

inline float scalar(Brain, std::uint16_t bits) {
  const std::uint32_t wide = static_cast<std::uint32_t>(bits) << 16;
  float f;
  __builtin_memcpy(&f, &wide, sizeof f);
  return f;
}

// IEEE binary16 -> binary32, exact for every input (subnormals, infinities, NaN payloads).
inline float scalar(Half, std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
  std::uint32_t wide;
  if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;  // exact: mantissa < 2^10
    __builtin_memcpy(&wide, &magnitude, sizeof wide);
    wide |= sign;
  } else if (exponent == 31) {
    wide = sign | 0x7f800000u | (mantissa << 13);
  } else {
    wide = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  float f;
  __builtin_memcpy(&f, &wide, sizeof f);
  return f;
}

inline float scalar(Int8, std::int8_t q) { return static_cast<float>(q); }

template <class Tag> struct Stored { using type = std::uint16_t; };
template <> struct Stored<Int8> { using type = std::int8_t; };
template <> struct Stored<Single> { using type = float; };

// `width` stored weights as f32 lanes: V::load(Tag, p) widens; f32 weights are loaded as they are.
template <class V, class Tag>
typename V::reg load_weights(const typename Stored<Tag>::type* p) {
  if constexpr (std::is_same_v<Tag, Single>)
    return V::load(p);
  else
    return V::load(Tag{}, p);
}

template <class V, class Tag, int R>
void dot_rows(const float* x, std::int64_t ldx, const typename Stored<Tag>::type* w, std::int64_t in,
              std::int64_t count, float* y, std::int64_t ldy) {
  constexpr std::int64_t W = V::width;
  for (std::int64_t j = 0; j < count; ++j) {
    const auto* row = w + j * in;
    typename V::reg a[R], b[R];
    for (int r = 0; r < R; ++r) a[r] = b[r] = V::zero();
    std::int64_t k = 0;
    for (; k + 2 * W <= in; k += 2 * W) {
      const auto w0 = load_weights<V, Tag>(row + k), w1 = load_weights<V, Tag>(row + k + W);
      for (int r = 0; r < R; ++r) {
        a[r] = V::mul_add(V::load(x + r * ldx + k), w0, a[r]);
        b[r] = V::mul_add(V::load(x + r * ldx + k + W), w1, b[r]);
      }
    }
    if (k + W <= in) {
      const auto w0 = load_weights<V, Tag>(row + k);
      for (int r = 0; r < R; ++r) a[r] = V::mul_add(V::load(x + r * ldx + k), w0, a[r]);
      k += W;
    }
    for (int r = 0; r < R; ++r) {
      float s = V::sum(V::add(a[r], b[r]));
      for (std::int64_t t = k; t < in; ++t) s += x[r * ldx + t] * scalar(Tag{}, row[t]);
      y[r * ldy + j] = s;
    }
  }
}

template <class V, class Tag>
void dot(const float* x, std::int64_t ldx, int rows, const void* weights, std::int64_t in, std::int64_t count,
         float* y, std::int64_t ldy) {
  const auto* w = static_cast<const typename Stored<Tag>::type*>(weights);
  switch (rows) {
    case 1: return dot_rows<V, Tag, 1>(x, ldx, w, in, count, y, ldy);
    case 2: return dot_rows<V, Tag, 2>(x, ldx, w, in, count, y, ldy);
    case 3: return dot_rows<V, Tag, 3>(x, ldx, w, in, count, y, ldy);
    default: return dot_rows<V, Tag, 4>(x, ldx, w, in, count, y, ldy);
  }
}

// GGML's blocks (include/ecr/core/dtype.hpp), one struct per type over a level's V: `values` per
// block in `bytes`; scales(block) reads what the block's values share, once per block;
// weights(block, scales, e) gives values e .. e + width - 1 (e a multiple of V::width) as f32.
// Those are the very values the dequantized matrix holds (src/core/dtype.cpp): q is an exact
// integer, d * q is exact (d has 11 significant bits, q at most 5), so d * q + m rounds once
// whether or not the level fuses it.
template <class V>
typename V::reg half_at(const std::uint8_t* p) {
  std::uint16_t bits;
  __builtin_memcpy(&bits, p, sizeof bits);
  return V::splat_half(bits);
}

// The low or high nibbles of the 16 bytes at qs: values e .. e + width - 1 of a 32-value block
// whose value j is qs[j]'s low nibble and value j + 16 its high one.
template <class V>
typename V::ints nibbles(const std::uint8_t* qs, std::int64_t e) {
  return V::bits(V::bytes(qs + e % 16), e >= 16 ? 4 : 0, 4);
}

template <class V>
struct Q8_0 {  // { f16 d; int8 qs[32]; }
  static constexpr std::int64_t values = 32, bytes = 2 + 32;
  struct Scales {
    typename V::reg d;
  };
  static Scales scales(const std::uint8_t* block) { return {half_at<V>(block)}; }
  static typename V::reg weights(const std::uint8_t* block, const Scales& s, std::int64_t e) {
    return V::mul(s.d, V::load(Int8{}, reinterpret_cast<const std::int8_t*>(block + 2) + e));
  }
};

template <class V>
struct Q4_0 {  // { f16 d; uint8 qs[16]; }: d * (nibble - 8)
  static constexpr std::int64_t values = 32, bytes = 2 + 16;
  using Scales = typename Q8_0<V>::Scales;
  static Scales scales(const std::uint8_t* block) { return {half_at<V>(block)}; }
  static typename V::reg weights(const std::uint8_t* block, const Scales& s, std::int64_t e) {
    return V::mul(s.d, V::to_f32(nibbles<V>(block + 2, e), 8));
  }
};

template <class V>
struct Q4_1 {  // { f16 d; f16 m; uint8 qs[16]; }: d * nibble + m
  static constexpr std::int64_t values = 32, bytes = 4 + 16;
  struct Scales {
    typename V::reg d, m;
  };
  static Scales scales(const std::uint8_t* block) { return {half_at<V>(block), half_at<V>(block + 2)}; }
  static typename V::reg weights(const std::uint8_t* block, const Scales& s, std::int64_t e) {
    return V::mul_add(s.d, V::to_f32(nibbles<V>(block + 4, e), 0), s.m);
  }
};

// Q5's quants: the nibbles, and bit j of the little-endian word at qh as 16 for value j.
template <class V>
typename V::ints quants5(const std::uint8_t* qh, const std::uint8_t* qs, std::int64_t e) {
  std::uint32_t high;
  __builtin_memcpy(&high, qh, sizeof high);
  return V::combine(nibbles<V>(qs, e), V::word_bits(high, static_cast<int>(e)), 4);
}

template <class V>
struct Q5_0 {  // { f16 d; uint8 qh[4]; uint8 qs[16]; }: d * (q - 16)
  static constexpr std::int64_t values = 32, bytes = 2 + 4 + 16;
  using Scales = typename Q8_0<V>::Scales;
  static Scales scales(const std::uint8_t* block) { return {half_at<V>(block)}; }
  static typename V::reg weights(const std::uint8_t* block, const Scales& s, std::int64_t e) {
    return V::mul(s.d, V::to_f32(quants5<V>(block + 2, block + 6, e), 16));
  }
};

template <class V>
struct Q5_1 {  // { f16 d; f16 m; uint8 qh[4]; uint8 qs[16]; }: d * q + m
  static constexpr std::int64_t values = 32, bytes = 4 + 4 + 16;
  using Scales = typename Q4_1<V>::Scales;
  static Scales scales(const std::uint8_t* block) { return {half_at<V>(block), half_at<V>(block + 2)}; }
  static typename V::reg weights(const std::uint8_t* block, const Scales& s, std::int64_t e) {
    return V::mul_add(s.d, V::to_f32(quants5<V>(block + 4, block + 8, e), 0), s.m);
  }
};

// dot_rows for block weights, with the same registers fed in the same order: every `in` is a
// multiple of 2 * width, so dot_rows on the dequantized f32 rows takes no tail and gives these bits.
template <class V, class Block, int R>
void dot_block_rows(const float* x, std::int64_t ldx, const std::uint8_t* w, std::int64_t in, std::int64_t count,
                    float* y, std::int64_t ldy) {
  constexpr std::int64_t W = V::width;
  static_assert(Block::values % (2 * W) == 0, "a block holds whole pairs of registers");
  const std::int64_t row_bytes = in / Block::values * Block::bytes;
  for (std::int64_t j = 0; j < count; ++j) {
    const std::uint8_t* block = w + j * row_bytes;
    typename V::reg a[R], b[R];
    for (int r = 0; r < R; ++r) a[r] = b[r] = V::zero();
    for (std::int64_t k = 0; k < in; k += Block::values, block += Block::bytes) {
      const auto s = Block::scales(block);
      for (std::int64_t e = 0; e < Block::values; e += 2 * W) {
        const auto w0 = Block::weights(block, s, e), w1 = Block::weights(block, s, e + W);
        for (int r = 0; r < R; ++r) {
          a[r] = V::mul_add(V::load(x + r * ldx + k + e), w0, a[r]);
          b[r] = V::mul_add(V::load(x + r * ldx + k + e + W), w1, b[r]);
        }
      }
    }
    for (int r = 0; r < R; ++r) y[r * ldy + j] = V::sum(V::add(a[r], b[r]));
  }
}

template <class V, class Block>
void dot_blocks(const float* x, std::int64_t ldx, int rows, const void* weights, std::int64_t in, std::int64_t count,
                float* y, std::int64_t ldy) {
  const auto* w = static_cast<const std::uint8_t*>(weights);
  switch (rows) {
    case 1: return dot_block_rows<V, Block, 1>(x, ldx, w, in, count, y, ldy);
    case 2: return dot_block_rows<V, Block, 2>(x, ldx, w, in, count, y, ldy);
    case 3: return dot_block_rows<V, Block, 3>(x, ldx, w, in, count, y, ldy);
    default: return dot_block_rows<V, Block, 4>(x, ldx, w, in, count, y, ldy);
  }
}

template <class V, class Block>
void widen_blocks(const void* source, float* dst, std::int64_t n) {
  const auto* block = static_cast<const std::uint8_t*>(source);
  for (std::int64_t k = 0; k < n; k += Block::values, block += Block::bytes) {
    const auto s = Block::scales(block);
    for (std::int64_t e = 0; e < Block::values; e += V::width) V::store(dst + k + e, Block::weights(block, s, e));
  }
}

template <class V, class Tag>
void widen(const void* source, float* dst, std::int64_t n) {
  const auto* src = static_cast<const typename Stored<Tag>::type*>(source);
  std::int64_t i = 0;
  for (; i + V::width <= n; i += V::width) V::store(dst + i, load_weights<V, Tag>(src + i));
  for (; i < n; ++i) dst[i] = scalar(Tag{}, src[i]);
}

template <class V>
LinearKernels make_kernels(const char* level) {
  return {level,
          {dot<V, Half>, dot<V, Brain>, dot<V, Int8>, dot<V, Single>, dot_blocks<V, Q8_0<V>>, dot_blocks<V, Q4_0<V>>,
           dot_blocks<V, Q4_1<V>>, dot_blocks<V, Q5_0<V>>, dot_blocks<V, Q5_1<V>>},
          {widen<V, Half>, widen<V, Brain>, widen<V, Int8>, widen<V, Single>, widen_blocks<V, Q8_0<V>>,
           widen_blocks<V, Q4_0<V>>, widen_blocks<V, Q4_1<V>>, widen_blocks<V, Q5_0<V>>, widen_blocks<V, Q5_1<V>>},
          nullptr,
          nullptr};
}
