// The 8-bit activation path of nn::linear (Activations::q8, linear_kernels.hpp), written once over
// a policy Q that each level defines:
//
//   Q::quants                      32 weight quants of one block as bytes, in value order
//   Q::q8_0(p), Q::q4(p, offset), Q::q5(qh, qs, offset)   a block's quants (offset subtracted)
//   Q::lanes                       8 f32 lanes
//   Q::half(p)                     the f16 value at p as f32
//   Q::zero(), Q::sum(lanes)       ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), ggml's hsum_float_8
//   Q::dot(quants, signed, xq, d, acc)   acc[i] = fma(d, (float)isum[i], acc[i]) where isum[i] is the
//                                  exact integer sum of quants[4i + t] * xq[4i + t] over t < 4
//   Q::quantize(x, n, dst, with_sum)   rows of f32 to q8_0 or q8_1 blocks (below)
//
// This is ggml's arithmetic as its AVX2 kernels do it (ggml-cpu's quantize_row_q8_0/q8_1 and
// ggml_vec_dot_*_q8_*; llamafile's tinyBLAS sums in the same order), so every level gives the same
// bits, and the ones llama.cpp gives on an AVX2 CPU:
//
//   activations: per block of 32, amax = max |x|, d = amax / 127 stored f16, q = round-half-even
//                (x * (127 / amax)) (0 when amax is 0); q8_1 adds s = f16(d * sum(q)).
//   dot:         per block, eight lanes each take the integer sum of 4 consecutive products,
//                times dw * dx (the f16 scales widened, their product rounded to f32), fused into
//                the lane's running sum; the lanes are added as hsum_float_8; for Q4_1 and Q5_1
//                the minimum's term sum_b m_b * s_b (fused multiply-adds, as gcc contracts ggml's
//                scalar loop) is added last.
//
// Included inside an unnamed namespace by each level, after linear_kernels.inl (scalar(Half)).

inline constexpr std::int64_t kQ8Values = 32;

// f32 -> IEEE binary16 bits, rounded to nearest even (F16C's _cvtss_sh and Eigen::half agree).
inline std::uint16_t half_bits(float value) {
  std::uint32_t x;
  __builtin_memcpy(&x, &value, sizeof x);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
  if (x >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to 65536 or more: inf
  if (x < 0x38800000u) {  // below 2^-14: a subnormal half, in units of 2^-24 (1024 is 2^-14's bits)
    float magnitude;
    __builtin_memcpy(&magnitude, &x, sizeof magnitude);
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::nearbyint(magnitude * 0x1p24f)));
  }
  const std::uint32_t rounded = x + 0xfffu + ((x >> 13) & 1u);  // to nearest even at bit 13
  return static_cast<std::uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

// Bytes of one activation block: q8_0 { f16 d; int8 qs[32]; }, q8_1 { f16 d; f16 s; int8 qs[32]; }.
inline constexpr std::int64_t q8_block_bytes(bool with_sum) { return with_sum ? 36 : 34; }

// The weight blocks of linear_kernels.inl's layouts, read as ggml's vec_dot does: integer quants
// (offset already subtracted for the symmetric types) and what multiplies their sums.
template <class Q>
struct Q8_0Int {  // { f16 d; int8 qs[32]; }
  static constexpr std::int64_t bytes = 34;
  static constexpr bool with_min = false, is_signed = true;
  static typename Q::quants quants(const std::uint8_t* b) { return Q::q8_0(b + 2); }
};
template <class Q>
struct Q4_0Int {  // { f16 d; uint8 qs[16]; }: nibble - 8
  static constexpr std::int64_t bytes = 18;
  static constexpr bool with_min = false, is_signed = true;
  static typename Q::quants quants(const std::uint8_t* b) { return Q::q4(b + 2, 8); }
};
template <class Q>
struct Q4_1Int {  // { f16 d; f16 m; uint8 qs[16]; }: nibble, and m times the activations' sum
  static constexpr std::int64_t bytes = 20;
  static constexpr bool with_min = true, is_signed = false;
  static typename Q::quants quants(const std::uint8_t* b) { return Q::q4(b + 4, 0); }
};
template <class Q>
struct Q5_0Int {  // { f16 d; uint8 qh[4]; uint8 qs[16]; }: q - 16
  static constexpr std::int64_t bytes = 22;
  static constexpr bool with_min = false, is_signed = true;
  static typename Q::quants quants(const std::uint8_t* b) { return Q::q5(b + 2, b + 6, 16); }
};
template <class Q>
struct Q5_1Int {  // { f16 d; f16 m; uint8 qh[4]; uint8 qs[16]; }: q, and m times the activations' sum
  static constexpr std::int64_t bytes = 24;
  static constexpr bool with_min = true, is_signed = false;
  static typename Q::quants quants(const std::uint8_t* b) { return Q::q5(b + 4, b + 8, 0); }
};

// One weight row after another (in / 32 blocks each) against R quantized activation rows (xq,
// ldxq bytes apart): a weight block's quants are unpacked once for the R rows.
template <class Q, class Block, int R>
void dot_q8_rows(const std::uint8_t* xq, std::int64_t ldxq, const std::uint8_t* w, std::int64_t blocks,
                 std::int64_t count, float* y, std::int64_t ldy) {
  constexpr std::int64_t xbytes = q8_block_bytes(Block::with_min);
  constexpr std::int64_t qs_at = Block::with_min ? 4 : 2;
  for (std::int64_t j = 0; j < count; ++j) {
    typename Q::lanes acc[R];
    float mins[R];
    for (int r = 0; r < R; ++r) {
      acc[r] = Q::zero();
      mins[r] = 0.0f;
    }
    const std::uint8_t* x = xq;
    for (std::int64_t b = 0; b < blocks; ++b, w += Block::bytes, x += xbytes) {
      const auto quants = Block::quants(w);
      const float dw = Q::half(w);
      for (int r = 0; r < R; ++r) {
        const std::uint8_t* xb = x + r * ldxq;
        acc[r] = Q::dot(quants, Block::is_signed, reinterpret_cast<const std::int8_t*>(xb + qs_at), dw * Q::half(xb),
                        acc[r]);
      }
      if constexpr (Block::with_min) {
        const float m = Q::half(w + 2);
        for (int r = 0; r < R; ++r) mins[r] = std::fma(m, Q::half(x + r * ldxq + 2), mins[r]);
      }
    }
    for (int r = 0; r < R; ++r) y[r * ldy + j] = Block::with_min ? Q::sum(acc[r]) + mins[r] : Q::sum(acc[r]);
  }
}

// y[r * ldy + j] = row r of the quantized activations (xq, ldxq bytes apart) dotted with weight
// row j, for r < rows and j < count: groups of 4 activation rows pass over the chunk's weight
// rows, which stay in cache.
template <class Q, class Block>
void dot_q8(const void* xq, std::int64_t ldxq, std::int64_t rows, const void* weights, std::int64_t in,
            std::int64_t count, float* y, std::int64_t ldy) {
  const auto* w = static_cast<const std::uint8_t*>(weights);
  const auto* x = static_cast<const std::uint8_t*>(xq);
  const std::int64_t blocks = in / kQ8Values;
  for (std::int64_t r = 0; r < rows; r += 4) {
    const std::uint8_t* xr = x + r * ldxq;
    float* yr = y + r * ldy;
    switch (std::min<std::int64_t>(4, rows - r)) {
      case 1: dot_q8_rows<Q, Block, 1>(xr, ldxq, w, blocks, count, yr, ldy); break;
      case 2: dot_q8_rows<Q, Block, 2>(xr, ldxq, w, blocks, count, yr, ldy); break;
      case 3: dot_q8_rows<Q, Block, 3>(xr, ldxq, w, blocks, count, yr, ldy); break;
      default: dot_q8_rows<Q, Block, 4>(xr, ldxq, w, blocks, count, yr, ldy); break;
    }
  }
}

template <class Q>
void quantize_q8_0(const float* x, std::int64_t n, void* dst) {
  Q::quantize(x, n, static_cast<std::uint8_t*>(dst), false);
}
template <class Q>
void quantize_q8_1(const float* x, std::int64_t n, void* dst) {
  Q::quantize(x, n, static_cast<std::uint8_t*>(dst), true);
}

// The table entries: the block types of 32 values; the others (and the k-quants, whose q8_K
// path is not written) keep null, and nn::linear gives them f32 activations.
template <class Q>
void add_q8_kernels(LinearKernels& k) {
  k.quantize_q8_0 = quantize_q8_0<Q>;
  k.quantize_q8_1 = quantize_q8_1<Q>;
  k.dot_q8[static_cast<int>(WeightType::q8_0)] = dot_q8<Q, Q8_0Int<Q>>;
  k.dot_q8[static_cast<int>(WeightType::q4_0)] = dot_q8<Q, Q4_0Int<Q>>;
  k.dot_q8[static_cast<int>(WeightType::q4_1)] = dot_q8<Q, Q4_1Int<Q>>;
  k.dot_q8[static_cast<int>(WeightType::q5_0)] = dot_q8<Q, Q5_0Int<Q>>;
  k.dot_q8[static_cast<int>(WeightType::q5_1)] = dot_q8<Q, Q5_1Int<Q>>;
}

// The portable policy: the same integers and the same fused operations in scalar C++.
struct Q8Scalar {
  struct quants {
    std::int8_t v[32];
  };
  struct lanes {
    float v[8];
  };
  static quants q8_0(const std::uint8_t* qs) {
    quants q;
    __builtin_memcpy(q.v, qs, 32);
    return q;
  }
  static quants q4(const std::uint8_t* qs, int offset) {
    quants q;
    for (int j = 0; j < 16; ++j) {
      q.v[j] = static_cast<std::int8_t>((qs[j] & 15) - offset);
      q.v[j + 16] = static_cast<std::int8_t>((qs[j] >> 4) - offset);
    }
    return q;
  }
  static quants q5(const std::uint8_t* qh, const std::uint8_t* qs, int offset) {
    std::uint32_t high;
    __builtin_memcpy(&high, qh, sizeof high);
    quants q = q4(qs, 0);
    for (int j = 0; j < 32; ++j) q.v[j] = static_cast<std::int8_t>((q.v[j] | ((high >> j) & 1) << 4) - offset);
    return q;
  }
  static float half(const std::uint8_t* p) {
    std::uint16_t bits;
    __builtin_memcpy(&bits, p, sizeof bits);
    return scalar(Half{}, bits);
  }
  static lanes zero() { return {}; }
  static lanes dot(const quants& w, bool, const std::int8_t* xq, float d, lanes acc) {
    for (int i = 0; i < 8; ++i) {
      int sum = 0;
      for (int t = 0; t < 4; ++t) sum += w.v[4 * i + t] * xq[4 * i + t];
      acc.v[i] = std::fma(d, static_cast<float>(sum), acc.v[i]);
    }
    return acc;
  }
  static float sum(const lanes& a) {
    return ((a.v[0] + a.v[4]) + (a.v[2] + a.v[6])) + ((a.v[1] + a.v[5]) + (a.v[3] + a.v[7]));
  }
  // cvtps_epi32 then saturating packs: NaN becomes -128, as there.
  static std::int8_t to_q8(float value) {
    if (!(value == value)) return -128;
    return static_cast<std::int8_t>(std::clamp(std::nearbyint(value), -128.0f, 127.0f));
  }
  static void quantize(const float* x, std::int64_t n, std::uint8_t* dst, bool with_sum) {
    for (std::int64_t k = 0; k < n; k += kQ8Values, x += kQ8Values, dst += q8_block_bytes(with_sum)) {
      float amax = 0.0f;
      for (int j = 0; j < kQ8Values; ++j) amax = std::max(amax, std::fabs(x[j]));
      const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
      const std::uint16_t d16 = half_bits(d);
      __builtin_memcpy(dst, &d16, 2);
      auto* qs = reinterpret_cast<std::int8_t*>(dst + (with_sum ? 4 : 2));
      int sum = 0;
      for (int j = 0; j < kQ8Values; ++j) {
        qs[j] = to_q8(x[j] * id);
        sum += qs[j];
      }
      if (with_sum) {
        const std::uint16_t s16 = half_bits(d * static_cast<float>(sum));
        __builtin_memcpy(dst + 2, &s16, 2);
      }
    }
  }
};
