// The AVX-512 F/BW/VL vector type of linear_kernels.inl (16 f32 lanes), shared by the avx512
// and avx512bf16 levels. Included inside an unnamed namespace after linear_kernels.inl, by files
// built with at least -mavx512f -mavx512bw -mavx512vl -mf16c.

struct Avx512 {
  static constexpr int width = 16;
  using reg = __m512;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg mul_add(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static reg load(Half, const std::uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static reg load(Brain, const std::uint16_t* p) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  static reg load(Int8, const std::int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg splat_half(std::uint16_t bits) { return _mm512_set1_ps(_cvtsh_ss(bits)); }
  using ints = __m512i;
  static ints bytes(const std::uint8_t* p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static ints bits(ints q, int shift, int count) {
    return _mm512_and_si512(_mm512_srli_epi32(q, static_cast<unsigned>(shift)), _mm512_set1_epi32((1 << count) - 1));
  }
  static ints word_bits(std::uint32_t w, int first) {
    const __m512i shifts = _mm512_add_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(first));
    return _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(static_cast<int>(w)), shifts), _mm512_set1_epi32(1));
  }
  static ints combine(ints low, ints high, int shift) {
    return _mm512_or_si512(low, _mm512_slli_epi32(high, static_cast<unsigned>(shift)));
  }
  static reg to_f32(ints q, int offset) { return _mm512_cvtepi32_ps(_mm512_sub_epi32(q, _mm512_set1_epi32(offset))); }
  static void store(float* p, reg r) { _mm512_storeu_ps(p, r); }
  static float sum(reg r) {
    const __m256 half = _mm256_add_ps(_mm512_castps512_ps256(r),
                                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(r), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
