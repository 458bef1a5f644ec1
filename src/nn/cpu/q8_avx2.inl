// The AVX2 policy of q8_kernels.inl, shared by the x86 levels (each is built with AVX2 at least).
// Included inside an unnamed namespace after q8_kernels.inl.
struct Q8Avx2 {
  using quants = __m256i;
  using lanes = __m256;
  static quants q8_0(const std::uint8_t* qs) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)); }
  // Low nibbles to bytes 0..15, high ones to 16..31.
  static quants nibbles(const std::uint8_t* qs) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
    return _mm256_and_si256(both, _mm256_set1_epi8(15));
  }
  static quants q4(const std::uint8_t* qs, int offset) {
    return _mm256_sub_epi8(nibbles(qs), _mm256_set1_epi8(static_cast<char>(offset)));
  }
  // Bit j of the little-endian word at qh as 16 in byte j.
  static quants q5(const std::uint8_t* qh, const std::uint8_t* qs, int offset) {
    std::uint32_t high;
    __builtin_memcpy(&high, qh, sizeof high);
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(static_cast<int>(high)),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    const __m256i q = _mm256_or_si256(nibbles(qs), _mm256_and_si256(set, _mm256_set1_epi8(16)));
    return _mm256_sub_epi8(q, _mm256_set1_epi8(static_cast<char>(offset)));
  }
  static float half(const std::uint8_t* p) {
    std::uint16_t bits;
    __builtin_memcpy(&bits, p, sizeof bits);
    return _cvtsh_ss(bits);
  }
  static lanes zero() { return _mm256_setzero_ps(); }
  // maddubs multiplies unsigned by signed bytes: a signed weight lends its sign to the activation.
  // No pair saturates: |w| <= 128 and |x| <= 128 give at most 2 * 128 * 128 = 32768 only for
  // w = x = -128, which the activations never hold (they are at least -127 for finite input).
  static lanes dot(quants w, bool is_signed, const std::int8_t* xq, float d, lanes acc) {
    __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
    if (is_signed) {
      x = _mm256_sign_epi8(x, w);
      w = _mm256_sign_epi8(w, w);
    }
    const __m256i pairs = _mm256_maddubs_epi16(w, x);
    const __m256i fours = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(fours), acc);
  }
  static float sum(lanes a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static void quantize(const float* x, std::int64_t n, std::uint8_t* dst, bool with_sum) {
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (std::int64_t k = 0; k < n; k += kQ8Values, x += kQ8Values, dst += q8_block_bytes(with_sum)) {
      __m256 v[4];
      for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(x + 8 * i);
      __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], magnitude), _mm256_and_ps(v[1], magnitude)),
                               _mm256_max_ps(_mm256_and_ps(v[2], magnitude), _mm256_and_ps(v[3], magnitude)));
      __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
      m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
      m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
      const float amax = _mm_cvtss_f32(m4);
      const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
      const auto d16 = static_cast<std::uint16_t>(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
      __builtin_memcpy(dst, &d16, 2);
      __m256i q[4];
      for (int i = 0; i < 4; ++i)
        q[i] = _mm256_cvtps_epi32(
            _mm256_round_ps(_mm256_mul_ps(v[i], _mm256_set1_ps(id)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      if (with_sum) {
        const __m256i s8 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
        s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
        const auto s16 =
            static_cast<std::uint16_t>(_cvtss_sh(d * static_cast<float>(_mm_cvtsi128_si32(s4)), _MM_FROUND_TO_NEAREST_INT));
        __builtin_memcpy(dst + 2, &s16, 2);
      }
      // packs work per 128-bit half: 0..3 8..11 16..19 24..27 | 4..7 ...; the permute puts them back.
      const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + (with_sum ? 4 : 2)),
                          _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
  }
};
