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
//   V::splat(f)                  one f32 in every lane
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

// The k-quants (src/core/dtype.cpp has the layouts): 256 values per super-block. scales() works
// out each sub-block's d * scale (and dmin * min, negated) once per super-block, exactly, into a
// small array on the stack; weights() broadcasts the one its values share (a register of values
// never crosses a sub-block of 16) and reads the quants' bit fields in registers. Q6_K's product
// with q rounds, as the reference's does: a plain multiply on both sides.
struct KScales {
  float d[16], m[16];  // per sub-block: d * scale, -(dmin * min)
};
template <class V>
float half_value(const std::uint8_t* p) {
  std::uint16_t bits;
  __builtin_memcpy(&bits, p, sizeof bits);
  return scalar(Half{}, bits);
}

template <class V>
struct Q6_K {  // { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d; }: d * scale * (q - 32)
  static constexpr std::int64_t values = 256, bytes = 210;
  using Scales = KScales;
  static Scales scales(const std::uint8_t* block) {
    Scales s;
    const float d = half_value<V>(block + 208);
    for (int i = 0; i < 16; ++i) s.d[i] = d * static_cast<float>(static_cast<std::int8_t>(block[192 + i]));
    return s;
  }
  static typename V::reg weights(const std::uint8_t* block, const Scales& s, std::int64_t e) {
    const std::int64_t half = e / 128, t = e % 128 / 32, l = e % 32;
    const auto low = V::bits(V::bytes(block + half * 64 + (t & 1) * 32 + l), static_cast<int>(4 * (t >> 1)), 4);
    const auto high = V::bits(V::bytes(block + 128 + half * 32 + l), static_cast<int>(2 * t), 2);
    return V::mul(V::splat(s.d[e / 16]), V::to_f32(V::combine(low, high, 4), 32));
  }
};

// Q4_K's and Q5_K's 6-bit scale and minimum of sub-block j, packed in 12 bytes at s.
inline void scale_min_k4(int j, const std::uint8_t* s, int& scale, int& min) {
  if (j < 4) {
    scale = s[j] & 63;
    min = s[j + 4] & 63;
  } else {
    scale = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
    min = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
  }
}

template <class V>
KScales scales_k4(const std::uint8_t* block) {
  KScales s;
  const float d = half_value<V>(block), dmin = half_value<V>(block + 2);
  for (int j = 0; j < 8; ++j) {
    int scale, min;
    scale_min_k4(j, block + 4, scale, min);
    s.d[j] = d * static_cast<float>(scale);
    s.m[j] = -(dmin * static_cast<float>(min));
  }
  return s;
}

template <class V>
struct Q4_K {  // { f16 d; f16 dmin; uint8 scales[12]; uint8 qs[128]; }: d * scale * q - dmin * min
  static constexpr std::int64_t values = 256, bytes = 144;
  using Scales = KScales;
  static Scales scales(const std::uint8_t* block) { return scales_k4<V>(block); }
  static typename V::reg weights(const std::uint8_t* block, const Scales& s, std::int64_t e) {
    const auto q = V::bits(V::bytes(block + 16 + e / 64 * 32 + e % 32), static_cast<int>(4 * (e % 64 / 32)), 4);
    return V::mul_add(V::splat(s.d[e / 32]), V::to_f32(q, 0), V::splat(s.m[e / 32]));
  }
};

template <class V>
struct Q5_K {  // { f16 d; f16 dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]; }
  static constexpr std::int64_t values = 256, bytes = 176;
  using Scales = KScales;
  static Scales scales(const std::uint8_t* block) { return scales_k4<V>(block); }
  static typename V::reg weights(const std::uint8_t* block, const Scales& s, std::int64_t e) {
    const auto low = V::bits(V::bytes(block + 48 + e / 64 * 32 + e % 32), static_cast<int>(4 * (e % 64 / 32)), 4);
    const auto high = V::bits(V::bytes(block + 16 + e % 32), static_cast<int>(e / 32), 1);
    return V::mul_add(V::splat(s.d[e / 32]), V::to_f32(V::combine(low, high, 4), 0), V::splat(s.m[e / 32]));
  }
};

template <class V>
struct Q3_K {  // { uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; f16 d; }: d * (scale - 32) * q
  static constexpr std::int64_t values = 256, bytes = 110;
  using Scales = KScales;
  static Scales scales(const std::uint8_t* block) {
    Scales s;
    const float d = half_value<V>(block + 108);
    const std::uint8_t* packed = block + 96;
    for (int i = 0; i < 16; ++i) {
      const int low = i < 8 ? packed[i] & 15 : packed[i - 8] >> 4;
      const int high = packed[8 + i % 4] >> (2 * (i / 4)) & 3;
      s.d[i] = d * static_cast<float>((low | high << 4) - 32);
    }
    return s;
  }
  // q = the two low bits, less 4 where the hmask bit is clear.
  static typename V::reg weights(const std::uint8_t* block, const Scales& s, std::int64_t e) {
    const std::int64_t half = e / 128, j = e % 128 / 32, l = e % 32;
    const auto low = V::bits(V::bytes(block + 32 + half * 32 + l), static_cast<int>(2 * j), 2);
    const auto high = V::bits(V::bytes(block + l), static_cast<int>(4 * half + j), 1);
    return V::mul(V::splat(s.d[e / 16]), V::to_f32(V::combine(low, high, 2), 4));
  }
};

template <class V>
struct Q2_K {  // { uint8 scales[16]; uint8 qs[64]; f16 d; f16 dmin; }: d * (sc & 15) * q - dmin * (sc >> 4)
  static constexpr std::int64_t values = 256, bytes = 84;
  using Scales = KScales;
  static Scales scales(const std::uint8_t* block) {
    Scales s;
    const float d = half_value<V>(block + 80), dmin = half_value<V>(block + 82);
    for (int i = 0; i < 16; ++i) {
      s.d[i] = d * static_cast<float>(block[i] & 15);
      s.m[i] = -(dmin * static_cast<float>(block[i] >> 4));
    }
    return s;
  }
  static typename V::reg weights(const std::uint8_t* block, const Scales& s, std::int64_t e) {
    const std::int64_t half = e / 128, j = e % 128 / 32, l = e % 32;
    const auto q = V::bits(V::bytes(block + 16 + half * 32 + l), static_cast<int>(2 * j), 2);
    return V::mul_add(V::splat(s.d[e / 16]), V::to_f32(q, 0), V::splat(s.m[e / 16]));
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
  // The 8-bit activation entries are filled by add_q8_kernels (q8_kernels.inl).
  return {level,
          {dot<V, Half>, dot<V, Brain>, dot<V, Int8>, dot<V, Single>, dot_blocks<V, Q8_0<V>>, dot_blocks<V, Q4_0<V>>,
           dot_blocks<V, Q4_1<V>>, dot_blocks<V, Q5_0<V>>, dot_blocks<V, Q5_1<V>>, dot_blocks<V, Q6_K<V>>,
           dot_blocks<V, Q4_K<V>>, dot_blocks<V, Q5_K<V>>, dot_blocks<V, Q3_K<V>>, dot_blocks<V, Q2_K<V>>},
          {widen<V, Half>, widen<V, Brain>, widen<V, Int8>, widen<V, Single>, widen_blocks<V, Q8_0<V>>,
           widen_blocks<V, Q4_0<V>>, widen_blocks<V, Q4_1<V>>, widen_blocks<V, Q5_0<V>>, widen_blocks<V, Q5_1<V>>,
           widen_blocks<V, Q6_K<V>>, widen_blocks<V, Q4_K<V>>, widen_blocks<V, Q5_K<V>>, widen_blocks<V, Q3_K<V>>,
           widen_blocks<V, Q2_K<V>>},
          nullptr,
          nullptr,
          nullptr,
          nullptr,
          {}};
}
