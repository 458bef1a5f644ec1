#include "ecr/core/tensor.hpp"
#include "ecr/core/utf8.hpp"
#include "support.hpp"

using namespace ecr;

TEST_CASE("tensor: shapes, views share storage, typed access is checked") {
  Tensor t = Tensor::zeros(DType::f32, {2, 3}, "t");
  CHECK(t.numel() == 6);
  CHECK(t.nbytes() == 24);
  CHECK(t.dim(-1) == 3);
  CHECK(reinterpret_cast<std::uintptr_t>(t.raw()) % 64 == 0);
  t.matrix<float>()(1, 2) = 7.f;
  Tensor r = t.row(1);
  CHECK(r.shape() == Shape{3});
  CHECK(r.span<float>()[2] == 7.f);
  CHECK(r.storage() == StorageKind::view);
  r.span<float>()[0] = 5.f;  // a view writes through
  CHECK(t.data<float>()[3] == 5.f);
  CHECK(t.reshape({3, 2}).matrix<float>()(2, 1) == 7.f);
  CHECK_THROWS_AS(t.data<std::int32_t>(), ShapeError);
  CHECK_THROWS_AS(t.reshape({4, 2}), ShapeError);
  CHECK_THROWS_AS(t.rows(1, 2), ShapeError);
  CHECK_THROWS_AS(t.dim(2), ShapeError);
  CHECK_THROWS_AS(t.expect(DType::f32, {3, 2}), ShapeError);
  CHECK_NOTHROW(t.expect(DType::f32, {2, 3}));
  Tensor c = t.clone();
  c.span<float>()[0] = 1.f;
  CHECK(t.span<float>()[0] == 0.f);
}

TEST_CASE("tensor: f16 and bf16 convert to f32") {
  auto h = Tensor::from_vector<Eigen::half>({Eigen::half(0.5f), Eigen::half(-3.f)}, {2});
  auto b = Tensor::from_vector<Eigen::bfloat16>({Eigen::bfloat16(2.f)}, {1});
  CHECK(h.to_f32().span<float>()[1] == -3.f);
  CHECK(b.to_f32().span<float>()[0] == 2.f);
  CHECK_THROWS_AS(Tensor::zeros(DType::i32, {1}).to_f32(), ShapeError);
}

TEST_CASE("tensor: overflowing or negative shapes are shape errors") {
  CHECK_THROWS_AS(shape_numel({-1, 2}), ShapeError);
  CHECK_THROWS_AS(shape_numel({1ll << 40, 1ll << 40}), ShapeError);
  CHECK(shape_numel({}) == 1);
  CHECK(shape_numel({0, 5}) == 0);
}

TEST_CASE("utf8: validation rejects malformed sequences") {
  CHECK(is_valid_utf8("plain ascii"));
  CHECK(is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  CHECK(utf8_error_offset("ab\xc3") == 2u);            // truncated
  CHECK(utf8_error_offset("\xc0\xaf") == 0u);          // overlong
  CHECK(utf8_error_offset("x\xed\xa0\x80") == 1u);     // surrogate
  CHECK(utf8_error_offset("\xf4\x90\x80\x80") == 0u);  // above U+10FFFF
  CHECK(utf8_error_offset("\x80") == 0u);              // stray continuation
}
