// Every CUDA kernel against its CPU twin on random data (tests/cuda_support.hpp has the error
// measure and tolerances): LayerNorm (+ residual), bias + GELU / ReLU, row softmax, embedding
// gathers, cuBLAS GEMMs and linear layers, attention prefill and split-K decode, the R-GCN
// entity encoder, KGPrompt's cross-attention, emotion fusion, and the token choice (greedy arg
// max, logits processors, Philox sampling). Without a GPU each case says so and passes; a build
// without CUDA has one case checking that the backend reports itself absent.
#include "ecr/device/cuda.hpp"
#include "support.hpp"

#ifdef ECR_WITH_CUDA

#include <array>
#include <cstring>

#include "../kernels/philox.cuh"
#include "cuda_support.hpp"
#include "ecr/core/thread_pool.hpp"
#include "ecr/models/entity_encoder.hpp"
#include "ecr/models/entity_encoder_cuda.hpp"
#include "ecr/lm/generate.hpp"
#include "ecr/models/generate_cuda.hpp"
#include "ecr/models/prompt_encoder_cuda.hpp"
#include "ecr/nn/attention.hpp"
#include "nn/attention_cuda.hpp"
#include "ecr/nn/linear.hpp"
#include "ecr/nn/linear_cuda.hpp"
#include "ecr/nn/ops.hpp"
#include "nn/ops_cuda.hpp"
#include "nn/sparse_cuda.hpp"
#include "ecr/kg/cooccurrence.hpp"
#include <set>

using namespace ecr;
using namespace ecr::lm;
using namespace ecr::test;

namespace {

ThreadPool& pool() { return *ThreadPool::shared_default(); }

Tensor device(const Tensor& host, DType storage, cuda::Stream& stream) {
  return cuda::upload(cuda::host_cast(host, storage), stream);
}

Tensor add_rows(const Tensor& x, const Tensor& bias) {
  Tensor y = x.clone();
  y.matrix<float>().rowwise() += bias.vector<float>().transpose();
  return y;
}

}  // namespace

// --- row-wise ops -------------------------------------------------------------------------------

TEST_CASE("cuda kernels: layer norm and residual layer norm match nn::layer_norm") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(1);
  cuda::Stream stream;
  for (const DType st : kStorages)
    for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{1, 64}, {7, 80}, {33, 768}, {3, 1000}}) {
      INFO("storage " << name_of(st) << ", " << rows << " x " << cols);
      const nn::LayerNorm norm{random_tensor({cols}, rng, 0.3f, 1.0f), random_tensor({cols}, rng, 0.2f), 1e-5f};
      const cuda::LayerNorm dnorm = cuda::LayerNorm::upload(norm, stream);
      const Tensor x = rounded(random_tensor({rows, cols}, rng, 2.0f, 0.5f), st);
      Tensor expected = Tensor::empty(DType::f32, {rows, cols});
      nn::layer_norm(x.matrix<float>(), norm, expected.matrix<float>());

      Tensor dx = device(x, st, stream);
      const Tensor dy = cuda::empty_device(st, {rows, cols});
      cuda::layer_norm(stream, dx, dnorm, dy);
      ECR_CHECK_CLOSE(cuda::download(dy, stream), expected, tolerance(st));
      cuda::layer_norm(stream, dx, dnorm, dx);  // in place
      ECR_CHECK_CLOSE(cuda::download(dx, stream), expected, tolerance(st));

      // x += delta + bias, stored in x's dtype, then normalised.
      const Tensor x2 = rounded(random_tensor({rows, cols}, rng, 1.0f), st);
      const Tensor delta = rounded(random_tensor({rows, cols}, rng, 1.0f), st);
      const Tensor bias = random_tensor({cols}, rng, 0.3f);
      Tensor sum = x2.clone();
      sum.matrix<float>() += add_rows(delta, bias).matrix<float>();
      sum = rounded(sum, st);
      Tensor expected2 = Tensor::empty(DType::f32, {rows, cols});
      nn::layer_norm(sum.matrix<float>(), norm, expected2.matrix<float>());
      Tensor dx2 = device(x2, st, stream);
      cuda::residual_layer_norm(stream, dx2, device(delta, st, stream), cuda::upload(bias, stream), dnorm, dy);
      ECR_CHECK_CLOSE(cuda::download(dx2, stream), sum, tolerance(st));
      ECR_CHECK_CLOSE(cuda::download(dy, stream), expected2, tolerance(st));
    }
  // Typed errors: a CPU tensor, and an output that does not fit.
  const Tensor host = random_tensor({2, 8}, rng);
  const nn::LayerNorm small{random_tensor({8}, rng), random_tensor({8}, rng), 1e-5f};
  const cuda::LayerNorm dsmall = cuda::LayerNorm::upload(small, stream);
  CHECK_THROWS_AS(cuda::layer_norm(stream, host, dsmall, host), DeviceError);
  CHECK_THROWS_AS(cuda::layer_norm(stream, cuda::upload(host, stream), dsmall, cuda::empty_device(DType::f32, {3, 8})),
                  ShapeError);
}

// Every value of the one Activation enum, through the device epilogue and through a device
// Linear, against nn::activate: a value that reached the kernel as another form fails here.
TEST_CASE("cuda kernels: bias + every activation matches the CPU epilogue") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(2);
  cuda::Stream stream;
  for (const DType st : kStorages)
    for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{1, 80}, {5, 3072}})
      for (const nn::Activation form : nn::kActivations) {
        INFO("storage " << name_of(st) << ", " << rows << " x " << cols << ", " << nn::activation_name(form));
        const Tensor y = rounded(random_tensor({rows, cols}, rng, 4.0f), st);
        const Tensor bias = random_tensor({cols}, rng, 0.5f);
        Tensor expected = add_rows(y, bias);
        nn::activate(form, expected.matrix<float>());
        const Tensor dy = device(y, st, stream);
        cuda::bias_activation(stream, dy, cuda::upload(bias, stream), form);
        ECR_CHECK_CLOSE(cuda::download(dy, stream), expected, tolerance(st));
      }
  for (const nn::Activation form : nn::kActivations) {
    INFO("linear, " << nn::activation_name(form));
    const nn::Linear layer{random_tensor({24, 16}, rng, 0.5f), random_tensor({24}, rng, 0.5f)};
    const Tensor x = random_tensor({3, 16}, rng, 2.0f);
    Tensor expected = Tensor::empty(DType::f32, {3, 24});
    nn::linear(x.matrix<float>(), layer, expected.matrix<float>(), pool(), form);
    Tensor dy = cuda::empty_device(DType::f32, {3, 24});
    cuda::linear(stream, cuda::upload(x, stream), cuda::Linear::upload(layer, stream), dy, form);
    ECR_CHECK_CLOSE(cuda::download(dy, stream), expected, 1e-4f);
  }
}

TEST_CASE("cuda kernels: row softmax with per-row lengths matches nn::softmax_rows") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(3);
  cuda::Stream stream;
  for (const DType st : kStorages)
    for (const int cols : {1, 50, 1000}) {
      INFO("storage " << name_of(st) << ", " << cols << " columns");
      const int rows = 9;
      const float scale = 1.0f / 64.0f;
      const Tensor x = rounded(random_tensor({rows, cols}, rng, 300.0f), st);
      std::vector<std::int64_t> valid(rows);
      std::vector<std::int32_t> valid32(rows);
      for (int i = 0; i < rows; ++i) {
        valid[i] = i == 0 ? 0 : i == 1 ? cols : std::uniform_int_distribution<int>(1, cols)(rng);
        valid32[i] = static_cast<std::int32_t>(valid[i]);
      }
      Tensor expected = x.clone();
      expected.vector<float>() *= scale;
      nn::softmax_rows(expected.matrix<float>(), valid);
      const Tensor dx = device(x, st, stream);
      cuda::softmax_rows(stream, dx, scale, cuda::upload(Tensor::from_vector(valid32, {rows}), stream));
      ECR_CHECK_CLOSE(cuda::download(dx, stream), expected, tolerance(st));

      Tensor all = x.clone();
      all.vector<float>() *= scale;
      nn::softmax_rows(all.matrix<float>());
      const Tensor dall = device(x, st, stream);
      cuda::softmax_rows(stream, dall, scale);
      ECR_CHECK_CLOSE(cuda::download(dall, stream), all, tolerance(st));
    }
}

TEST_CASE("cuda kernels: token + position embedding and row gathers match the CPU rows") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(4);
  cuda::Stream stream;
  for (const DType st : kStorages) {
    INFO("storage " << name_of(st));
    const Tensor wte = rounded(random_tensor({100, 48}, rng), st);
    const Tensor wpe = rounded(random_tensor({40, 48}, rng), st);
    const std::vector<std::int32_t> ids{5, 99, 0, 5, 42, 17, 63};
    const std::int64_t first = 3;
    Tensor expected = Tensor::empty(DType::f32, {7, 48});
    nn::gather_rows(wte.matrix<float>(), ids, expected.matrix<float>(), "token id");
    Tensor gathered = expected.clone();
    for (int i = 0; i < 7; ++i) expected.matrix<float>().row(i) += wpe.matrix<float>().row(first + i);

    const Tensor dwte = device(wte, st, stream), dwpe = device(wpe, st, stream);
    const Tensor out = cuda::empty_device(st, {7, 48});
    cuda::embed(stream, dwte, dwpe, ids, first, out);
    ECR_CHECK_CLOSE(cuda::download(out, stream), expected, tolerance(st));
    cuda::gather_rows(stream, dwte, ids, out, "token id");
    CHECK(relative_error(cuda::download(out, stream), gathered) == 0.0f);  // a copy is exact

    const std::vector<std::int32_t> bad{1, 100};
    CHECK_THROWS_AS(cuda::embed(stream, dwte, dwpe, bad, 0, cuda::empty_device(st, {2, 48})), InputError);
    CHECK_THROWS_AS(cuda::embed(stream, dwte, dwpe, ids, 34, out), InputError);  // position 40 of 40
  }
}

// --- GEMMs ------------------------------------------------------------------------------------

TEST_CASE("cuda kernels: cuBLAS linear layers and transposed GEMMs match nn::linear and Eigen") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(5);
  cuda::Stream stream;
  struct Shape3 {
    int m, k, n;
  };
  for (const DType st : kStorages)
    for (const cuda::GemmMath math : {cuda::GemmMath::exact, cuda::GemmMath::tensor_cores})
      for (const Shape3 s : {Shape3{1, 768, 2304}, Shape3{7, 80, 33}, Shape3{64, 384, 384}}) {
        // TF32 keeps 10 mantissa bits, so tensor-core f32 GEMMs get the half-precision tolerance.
        const float tol = st == DType::f32 && math == cuda::GemmMath::exact ? 1e-4f : 1e-2f;
        INFO("storage " << name_of(st) << ", tensor cores " << (math == cuda::GemmMath::tensor_cores) << ", " << s.m
                        << " x " << s.k << " x " << s.n);
        const Tensor x = rounded(random_tensor({s.m, s.k}, rng), st);
        const nn::Linear layer{rounded(random_tensor({s.n, s.k}, rng, 0.1f), st), random_tensor({s.n}, rng, 0.5f)};
        Tensor expected = Tensor::empty(DType::f32, {s.m, s.n});
        nn::linear(x.matrix<float>(), layer, expected.matrix<float>(), pool(), nn::Activation::gelu_tanh);
        const cuda::Linear dlayer = cuda::Linear::upload(layer, stream, st);
        const Tensor dx = device(x, st, stream);
        const Tensor dy = cuda::empty_device(st, {s.m, s.n});
        cuda::linear(stream, dx, dlayer, dy, nn::Activation::gelu_tanh, false, math);
        ECR_CHECK_CLOSE(cuda::download(dy, stream), expected, tol);

        // y += x W^T + b: the residual form.
        const Tensor y0 = rounded(random_tensor({s.m, s.n}, rng), st);
        Tensor accumulated = y0.clone();
        nn::linear(x.matrix<float>(), layer, accumulated.matrix<float>(), pool(), nn::Activation::none, true);
        const Tensor dacc = device(y0, st, stream);
        cuda::linear(stream, dx, dlayer, dacc, nn::Activation::none, true, math);
        ECR_CHECK_CLOSE(cuda::download(dacc, stream), accumulated, tol);

        // C = A^T B and C = A B with an f32 output from half operands.
        const Tensor a = rounded(random_tensor({s.k, s.m}, rng), st);
        const Tensor b = rounded(random_tensor({s.k, s.n}, rng), st);
        Tensor atb = Tensor::empty(DType::f32, {s.m, s.n});
        atb.matrix<float>().noalias() = a.matrix<float>().transpose() * b.matrix<float>();
        const Tensor dc = cuda::empty_device(DType::f32, {s.m, s.n});
        cuda::gemm(stream, device(a, st, stream), true, device(b, st, stream), false, dc, 1.0f, 0.0f, math);
        ECR_CHECK_CLOSE(cuda::download(dc, stream), atb, tol);
        const Tensor am = rounded(random_tensor({s.m, s.k}, rng), st);
        Tensor ab = Tensor::empty(DType::f32, {s.m, s.n});
        ab.matrix<float>().noalias() = 0.5f * (am.matrix<float>() * b.matrix<float>());
        cuda::gemm(stream, device(am, st, stream), false, device(b, st, stream), false, dc, 0.5f, 0.0f, math);
        ECR_CHECK_CLOSE(cuda::download(dc, stream), ab, tol);
      }
  const Tensor a = cuda::empty_device(DType::f32, {3, 4}), b = cuda::empty_device(DType::f32, {5, 6});
  CHECK_THROWS_AS(cuda::gemm(stream, a, false, b, false, cuda::empty_device(DType::f32, {3, 6})), ShapeError);
}

// --- attention ------------------------------------------------------------------------------

namespace {

struct AttentionCase {
  int heads, head_dim;
  std::vector<std::int32_t> count, past;
};

// out (rows, heads * head_dim) = nn::attend per (sequence, head) over the cache's first past + count keys,
// causally or not as batch.causal says.
Tensor cpu_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const cuda::AttentionBatch& batch,
                     int heads, int hd, float scale) {
  const std::int64_t capacity = k_cache.dim(2);
  const std::int64_t q_cols = q.dim(1), width = static_cast<std::int64_t>(heads) * hd;
  Tensor out = Tensor::zeros(DType::f32, {q.dim(0), width});
  for (std::size_t b = 0; b < batch.past.size(); ++b)
    for (int h = 0; h < heads; ++h) {
      const std::int64_t n = batch.q_count[b], keys = batch.past[b] + n;
      if (n == 0) continue;
      const std::int64_t block = (static_cast<std::int64_t>(b) * heads + h) * capacity * hd;
      nn::attend(nn::ConstMap(q.data<float>() + batch.q_start[b] * q_cols + h * hd, n, hd, Eigen::OuterStride<>(q_cols)),
                 nn::ConstMap(k_cache.data<float>() + block, keys, hd, Eigen::OuterStride<>(hd)),
                 nn::ConstMap(v_cache.data<float>() + block, keys, hd, Eigen::OuterStride<>(hd)),
                 nn::MutableMap(out.data<float>() + batch.q_start[b] * width + h * hd, n, hd, Eigen::OuterStride<>(width)),
                 scale, batch.causal ? std::optional<std::int64_t>(batch.past[b]) : std::nullopt);
    }
  return out;
}

cuda::AttentionBatch batch_of(const AttentionCase& c) {
  cuda::AttentionBatch batch{{}, c.count, c.past};
  std::int32_t start = 0;
  for (const std::int32_t n : c.count) {
    batch.q_start.push_back(start);
    start += n;
  }
  return batch;
}

}  // namespace

TEST_CASE("cuda attention: prefill (causal and bidirectional) with prefix keys and per-sequence lengths matches nn::attend") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(6);
  cuda::Stream stream;
  // Sequences of 1, 17 and 40 new tokens after 0, 10 (a prefix prompt) and 3 cached keys; head
  // dims on and off the warp width; and one sequence with a context past 1000 keys.
  const std::vector<AttentionCase> cases{{2, 64, {1, 17, 40}, {0, 10, 3}}, {2, 80, {1, 17, 40}, {0, 10, 3}},
                                         {3, 16, {5, 1, 33}, {10, 0, 0}},  {1, 128, {16, 2}, {7, 0}},
                                         {2, 64, {20}, {1100}}};
  for (const DType st : kStorages)
    for (const AttentionCase& c : cases) {
      INFO("storage " << name_of(st) << ", heads " << c.heads << ", head_dim " << c.head_dim << ", past "
                      << c.past[0]);
      const cuda::AttentionBatch batch = batch_of(c);
      const auto b = static_cast<std::int64_t>(c.count.size());
      const std::int64_t rows = batch.q_start.back() + c.count.back(), width = c.heads * c.head_dim;
      std::int64_t capacity = 0;
      for (std::size_t i = 0; i < c.count.size(); ++i) capacity = std::max<std::int64_t>(capacity, c.past[i] + c.count[i]);
      capacity += 3;
      const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      // Queries inside a packed (rows, 3 * width) query|key|value buffer, as GPT-2 passes them.
      const Tensor q = rounded(random_tensor({rows, 3 * width}, rng, 2.0f), st);
      const Tensor new_k = rounded(random_tensor({rows, width}, rng), st);
      const Tensor new_v = rounded(random_tensor({rows, width}, rng), st);
      Tensor k_cache = rounded(random_tensor({b, c.heads, capacity, c.head_dim}, rng), st);
      Tensor v_cache = rounded(random_tensor({b, c.heads, capacity, c.head_dim}, rng), st);
      const Tensor dk = device(k_cache, st, stream), dv = device(v_cache, st, stream);
      cuda::append_kv(stream, device(new_k, st, stream), device(new_v, st, stream), batch, dk, dv);
      // What append_kv must have written: the new rows after each sequence's cached keys.
      for (std::int64_t s = 0; s < b; ++s)
        for (std::int64_t i = 0; i < c.count[s]; ++i)
          for (int h = 0; h < c.heads; ++h) {
            const std::int64_t src = (batch.q_start[s] + i) * width + h * c.head_dim;
            const std::int64_t dst = ((s * c.heads + h) * capacity + c.past[s] + i) * c.head_dim;
            std::copy_n(new_k.data<float>() + src, c.head_dim, k_cache.data<float>() + dst);
            std::copy_n(new_v.data<float>() + src, c.head_dim, v_cache.data<float>() + dst);
          }
      CHECK(relative_error(cuda::download(dk, stream), k_cache) == 0.0f);
      CHECK(relative_error(cuda::download(dv, stream), v_cache) == 0.0f);

      // Bidirectional (RoBERTa): every query of a sequence sees all of its keys, none of another's.
      for (const bool causal : {true, false}) {
        INFO("causal " << causal);
        cuda::AttentionBatch masked = batch;
        masked.causal = causal;
        const Tensor expected = cpu_attention(q, k_cache, v_cache, masked, c.heads, c.head_dim, scale);
        const Tensor out = cuda::empty_device(st, {rows, width});
        cuda::attention_prefill(stream, device(q, st, stream), dk, dv, masked, out, scale);
        ECR_CHECK_CLOSE(cuda::download(out, stream), expected, tolerance(st));
      }
    }
}

TEST_CASE("cuda attention: split-K decode over long contexts matches nn::attend") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(7);
  cuda::Stream stream;
  // One query per sequence after 0, 9 and 1200 cached keys (its own key is the last one).
  // keys_per_split: 0 lets the device choose; 100 puts split boundaries inside key groups; 128
  // is the natural block; a huge value forces the single-split path that writes directly.
  for (const DType st : kStorages)
    for (const int hd : {64, 80})
      for (const int per_split : {0, 100, 128, 1 << 20}) {
        INFO("storage " << name_of(st) << ", head_dim " << hd << ", keys per split " << per_split);
        const AttentionCase c{3, hd, {1, 1, 1}, {0, 9, 1200}};
        const cuda::AttentionBatch batch = batch_of(c);
        const std::int64_t capacity = 1204, width = c.heads * hd;
        const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
        const Tensor q = rounded(random_tensor({3, width}, rng, 2.0f), st);
        const Tensor k_cache = rounded(random_tensor({3, c.heads, capacity, hd}, rng), st);
        const Tensor v_cache = rounded(random_tensor({3, c.heads, capacity, hd}, rng), st);
        const Tensor expected = cpu_attention(q, k_cache, v_cache, batch, c.heads, hd, scale);
        const Tensor out = cuda::empty_device(st, {3, width});
        cuda::attention_decode(stream, device(q, st, stream), device(k_cache, st, stream), device(v_cache, st, stream),
                               batch, out, scale, per_split);
        ECR_CHECK_CLOSE(cuda::download(out, stream), expected, tolerance(st));
      }
  const Tensor q = cuda::empty_device(DType::f32, {2, 64});
  const Tensor cache = cuda::empty_device(DType::f32, {1, 1, 8, 64});
  CHECK_THROWS_AS(cuda::attention_decode(stream, q, cache, cache, {{0}, {2}, {0}}, cuda::empty_device(DType::f32, {2, 64}),
                                         1.0f),
                  InputError);  // two queries for a decode step
  CHECK_THROWS_AS(cuda::attention_prefill(stream, q, cache, cache, {{0}, {2}, {7}}, cuda::empty_device(DType::f32, {2, 64}),
                                          1.0f),
                  InputError);  // 7 + 2 keys do not fit 8 rows
}

// --- R-GCN ----------------------------------------------------------------------------------

TEST_CASE("cuda R-GCN: entity encoder matches EntityEncoder::forward (relation and basis channels)") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(8);
  cuda::Stream stream;
  struct Case {
    std::int64_t nodes, relations, bases, in, out;
  };
  // R <= B (channels are the W_r), R > B (channels are the bases), and the real KG's widths.
  for (const Case c : {Case{300, 3, 4, 48, 40}, Case{300, 6, 2, 48, 48}, Case{2000, 25, 8, 384, 384}}) {
    std::vector<std::int64_t> source, target, relation;
    std::uniform_int_distribution<std::int64_t> node(0, c.nodes - 11), rel(0, c.relations - 1);  // last 10: isolated
    for (std::int64_t e = 0; e < 3 * c.nodes; ++e) {
      source.push_back(node(rng));
      target.push_back(node(rng));
      relation.push_back(rel(rng));
    }
    for (int e = 0; e < 20; ++e) {  // duplicates count in the mean, as in PyG
      source.push_back(source[e]);
      target.push_back(target[e]);
      relation.push_back(relation[e]);
    }
    const RelationCsr csr = RelationCsr::from_edges(c.nodes, c.relations, source, target, relation);
    const cuda::RelationGraph graph = cuda::RelationGraph::upload(csr, stream);
    const float init = 1.0f / std::sqrt(static_cast<float>(c.in));
    const Tensor bases = random_tensor({c.bases, c.in, c.out}, rng, init, 0.0f, "weight");
    const Tensor comp = random_tensor({c.relations, c.bases}, rng, 0.5f, 0.0f, "comp");
    const Tensor root = random_tensor({c.in, c.out}, rng, init, 0.0f, "root");
    const Tensor bias = random_tensor({c.out}, rng, 0.2f, 0.0f, "bias");
    const Tensor probe = random_tensor({c.out}, rng);
    for (const DType st : kStorages) {
      INFO("storage " << name_of(st) << ", " << c.nodes << " nodes, R " << c.relations << ", B " << c.bases);
      const Tensor x = rounded(random_tensor({c.nodes, c.in}, rng), st);
      const Tensor expected = EntityEncoder(bases, comp, root, bias).forward(x, csr, pool());
      const cuda::EntityEncoder encoder(bases, comp, root, bias, stream, st);
      CHECK(encoder.channels() == std::min(c.relations, c.bases));
      const Tensor actual = cuda::download(encoder.forward(device(x, st, stream), graph, stream), stream).to_f32();
      ECR_CHECK_CLOSE(actual, expected, tolerance(st));
      // As a ranking: entity scores against one query vector keep their top 50.
      const Eigen::VectorXf a = actual.matrix<float>() * probe.vector<float>();
      const Eigen::VectorXf e = expected.matrix<float>() * probe.vector<float>();
      check_same_top({a.data(), a.data() + a.size()}, {e.data(), e.data() + e.size()}, 50, tolerance(st));
    }
  }
}

TEST_CASE("cuda co-occurrence: cuSPARSE's G = C E matches CooccurrenceMatrix::multiply") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(12);
  cuda::Stream stream;
  const std::int64_t n = 500, h = 96;
  // Rows with no entries, i32 and i64 column indices, and an empty matrix.
  for (const int nnz_per_row : {0, 7}) {
    for (const DType index : {DType::i32, DType::i64}) {
      INFO(nnz_per_row << " entries a row, " << dtype_name(index) << " indices");
      std::vector<std::int64_t> indptr{0}, cols;
      std::vector<float> values;
      std::uniform_int_distribution<std::int64_t> col(0, n - 1);
      std::uniform_real_distribution<float> value(0.0f, 3.0f);
      for (std::int64_t r = 0; r < n; ++r) {
        std::set<std::int64_t> row;
        if (r % 5 != 0)
          while (static_cast<int>(row.size()) < nnz_per_row) row.insert(col(rng));
        for (const std::int64_t c : row) {
          cols.push_back(c);
          values.push_back(value(rng));
        }
        indptr.push_back(static_cast<std::int64_t>(cols.size()));
      }
      Tensor ip = Tensor::empty(DType::i64, {n + 1}), ix = Tensor::empty(index, {static_cast<std::int64_t>(cols.size())}),
             vs = Tensor::empty(DType::f32, {static_cast<std::int64_t>(values.size())});
      std::copy(indptr.begin(), indptr.end(), ip.data<std::int64_t>());
      for (std::size_t k = 0; k < cols.size(); ++k) {
        if (index == DType::i32)
          ix.data<std::int32_t>()[k] = static_cast<std::int32_t>(cols[k]);
        else
          ix.data<std::int64_t>()[k] = cols[k];
      }
      std::copy(values.begin(), values.end(), vs.data<float>());
      const CooccurrenceMatrix c = CooccurrenceMatrix::from_tensors(ip, ix, vs, n);
      const Tensor e = random_tensor({n, h}, rng);
      const Tensor expected = c.multiply(e);
      const Tensor actual = cuda::download(cuda::cooccurrence_product(stream, c, cuda::to_device(e)), stream);
      ECR_CHECK_CLOSE(actual, expected, 1e-4f);
    }
  }
  CHECK_THROWS_AS(cuda::cooccurrence_product(stream, CooccurrenceMatrix::from_tensors(
                                                         Tensor::zeros(DType::i64, {3}), Tensor::empty(DType::i64, {0}),
                                                         Tensor::empty(DType::f32, {0}), 2),
                                             cuda::to_device(random_tensor({3, 4}, rng))),
                  ShapeError);
}

// --- KGPrompt -------------------------------------------------------------------------------

TEST_CASE("cuda KGPrompt: token-entity cross-attention matches the CPU steps (rec and conv)") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(9);
  cuda::Stream stream;
  const std::int64_t h = 64;
  for (const DType st : kStorages)
    for (const auto& [n, count] : std::vector<std::pair<std::int64_t, std::int64_t>>{{7, 3}, {1, 1}, {30, 12}}) {
      INFO("storage " << name_of(st) << ", " << n << " tokens, " << count << " entities");
      const Tensor tokens = rounded(random_tensor({n, h}, rng), st);
      const Tensor entities = rounded(random_tensor({count, h}, rng), st);
      const nn::Linear cross{rounded(random_tensor({h, h}, rng, 2.0f), st), {}};
      Tensor query = Tensor::empty(DType::f32, {n, h});
      nn::linear(tokens.matrix<float>(), cross, query.matrix<float>(), pool());
      Tensor a = Tensor::empty(DType::f32, {n, count});
      a.matrix<float>().noalias() = query.matrix<float>() * entities.matrix<float>().transpose();
      a.matrix<float>() /= static_cast<float>(h);

      // rec: each entity attends over the tokens.
      Tensor weights = Tensor::empty(DType::f32, {count, n});
      weights.matrix<float>() = a.matrix<float>().transpose();
      nn::softmax_rows(weights.matrix<float>());
      Tensor rec = entities.clone();
      rec.matrix<float>().noalias() += weights.matrix<float>() * tokens.matrix<float>();
      // conv: each token attends over the entities.
      Tensor soft = a.clone();
      nn::softmax_rows(soft.matrix<float>());
      Tensor conv = tokens.clone();
      conv.matrix<float>().noalias() += soft.matrix<float>() * entities.matrix<float>();

      const cuda::Linear dcross = cuda::Linear::upload(cross, stream, st);
      const Tensor dt = device(tokens, st, stream), de = device(entities, st, stream);
      ECR_CHECK_CLOSE(cuda::download(cuda::token_entity_attention(stream, PromptKind::rec, dt, de, dcross), stream), rec,
                      tolerance(st));
      ECR_CHECK_CLOSE(cuda::download(cuda::token_entity_attention(stream, PromptKind::conv, dt, de, dcross), stream),
                      conv, tolerance(st));
    }
}

TEST_CASE("cuda emotion fusion: weighted emotion gather, concatenation and fused MLP match the CPU steps") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(10);
  cuda::Stream stream;
  const std::int64_t h = 64, e = 4, n_entity = 20;
  for (const DType st : kStorages) {
    INFO("storage " << name_of(st));
    const Tensor table = rounded(random_tensor({10, e}, rng), st);
    const Tensor global = rounded(random_tensor({n_entity, h}, rng), st);
    const auto linear = [&](std::int64_t in, std::int64_t out) {
      return nn::Linear{rounded(random_tensor({out, in}, rng, 1.5f / std::sqrt(static_cast<float>(in))), st),
                        random_tensor({out}, rng, 0.1f)};
    };
    const nn::Linear first = linear(h + e, h), second = linear(h, h + e), fuse2 = linear(h + e, h);
    const cuda::EmotionFusion fusion(table, global, first, second, fuse2, stream, st);
    const std::vector<std::int32_t> entities{3, 17, 0};
    const std::vector<std::int32_t> ids{1, 4, 9, 2, 2, 0, 9, 0, 0};  // (L, K) = (3, 3), padded with prob 0
    const std::vector<float> probs{0.5f, 0.3f, 0.2f, 0.6f, 0.4f, 0.0f, 1.0f, 0.0f, 0.0f};
    const Tensor local = rounded(random_tensor({3, h}, rng), st);
    for (const bool with_global : {false, true}) {
      INFO("global entities " << with_global);
      const std::int64_t rows = with_global ? 6 : 3;
      Tensor joined = Tensor::zeros(DType::f32, {rows, h + e});
      auto j = joined.matrix<float>();
      for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t l = r % 3;
        j.row(r).head(h) = r < 3 ? local.matrix<float>().row(l) : global.matrix<float>().row(entities[l]);
        for (int k = 0; k < 3; ++k)
          j.row(r).tail(e) += probs[l * 3 + k] * table.matrix<float>().row(ids[l * 3 + k]);
      }
      Tensor hidden = Tensor::empty(DType::f32, {rows, h}), widened = Tensor::empty(DType::f32, {rows, h + e});
      Tensor expected = Tensor::empty(DType::f32, {rows, h});
      nn::linear(joined.matrix<float>(), first, hidden.matrix<float>(), pool());
      hidden.vector<float>() = hidden.vector<float>().cwiseMax(0.0f);
      nn::linear(hidden.matrix<float>(), second, widened.matrix<float>(), pool());
      nn::linear(widened.matrix<float>(), fuse2, expected.matrix<float>(), pool());
      const Tensor actual = fusion.forward(stream, device(local, st, stream), entities, ids, probs, with_global);
      ECR_CHECK_CLOSE(cuda::download(actual, stream), expected, tolerance(st));
    }
    const Tensor dlocal = device(local, st, stream);
    const std::vector<std::int32_t> bad_ids{1, 4, 10, 2, 2, 0, 9, 0, 0};
    CHECK_THROWS_AS(fusion.forward(stream, dlocal, entities, bad_ids, probs, false), InputError);
    const std::vector<std::int32_t> bad_entities{3, 20, 0};
    CHECK_THROWS_AS(fusion.forward(stream, dlocal, bad_entities, ids, probs, true), InputError);
    CHECK_THROWS_AS(fusion.forward(stream, dlocal, entities, std::span(ids).first(8), std::span(probs).first(8), false),
                    InputError);
  }
}

// --- token choice ---------------------------------------------------------------------------

TEST_CASE("cuda sampling: Philox4x32-10 reproduces the Random123 known-answer vectors (host)") {
  // Runs without a GPU: the device sampler's generator is the same header code.
  const auto check = [](kernels::Philox4x32 counter, std::uint32_t k0, std::uint32_t k1,
                        std::array<std::uint32_t, 4> expected) {
    const kernels::Philox4x32 r = kernels::philox4x32_10(counter, k0, k1);
    for (int i = 0; i < 4; ++i) CHECK(r.v[i] == expected[static_cast<std::size_t>(i)]);
  };
  check({{0, 0, 0, 0}}, 0, 0, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  check({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu,
        {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  check({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u,
        {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
  // Uniforms are in [0, 1) and depend on every input.
  const double u = cuda::philox_uniform(42, 7, 3);
  CHECK(u >= 0.0);
  CHECK(u < 1.0);
  CHECK(u != cuda::philox_uniform(43, 7, 3));
  CHECK(u != cuda::philox_uniform(42, 8, 3));
  CHECK(u != cuda::philox_uniform(42, 7, 4));
}

TEST_CASE("cuda sampling: greedy arg max equals std::max_element exactly (ties, -inf rows)") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(11);
  cuda::Stream stream;
  const std::int64_t vocab = 50257;
  Tensor logits = random_tensor({5, vocab}, rng, 10.0f);
  auto m = logits.matrix<float>();
  m(1, 777) = 50.0f;  // a tie: the first index wins
  m(1, 40000) = 50.0f;
  m.row(2).setConstant(-std::numeric_limits<float>::infinity());
  m.row(3).setConstant(-std::numeric_limits<float>::infinity());
  m(3, vocab - 1) = -1e30f;
  m.row(4).setConstant(0.25f);  // all equal: index 0
  const std::vector<std::int32_t> tokens = cuda::argmax_rows(stream, cuda::upload(logits, stream));
  REQUIRE(tokens.size() == 5);
  for (std::int64_t r = 0; r < 5; ++r) {
    const auto row = logits.row(r).span<float>();
    CHECK(tokens[static_cast<std::size_t>(r)] == std::max_element(row.begin(), row.end()) - row.begin());
  }
  CHECK(tokens[1] == 777);
}

TEST_CASE("cuda sampling: repetition penalty and n-gram bans equal the CPU processors") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(12);
  cuda::Stream stream;
  const std::vector<std::int32_t> context{5, 9, 5, 3, 9, 5, 3, 99, 7, 5, 3};
  for (const float penalty : {1.0f, 1.3f, 0.7f})
    for (const std::int64_t n : {0, 1, 2, 3}) {
      INFO("penalty " << penalty << ", n-gram " << n);
      Tensor expected = random_tensor({100}, rng, 3.0f);
      const Tensor dlogits = cuda::upload(expected, stream);
      apply_repetition_penalty(expected.span<float>(), context, penalty);
      ban_repeated_ngrams(expected.span<float>(), context, n);
      cuda::apply_repetition_penalty(stream, dlogits, context, penalty);
      cuda::ban_repeated_ngrams(stream, dlogits, context, n);
      const Tensor actual = cuda::download(dlogits, stream);
      CHECK(std::memcmp(actual.raw(), expected.raw(), expected.nbytes()) == 0);  // the same float operations
    }
}

TEST_CASE("cuda sampling: top-k / top-p draws are reproducible and follow the CPU's warped distribution") {
  ECR_REQUIRE_GPU();
  std::mt19937 rng(13);
  cuda::Stream stream;
  const std::int64_t vocab = 64, draws = 2000;
  const Tensor row = random_tensor({vocab}, rng, 3.0f);
  Tensor logits = Tensor::empty(DType::f32, {draws, vocab});
  for (std::int64_t r = 0; r < draws; ++r) logits.matrix<float>().row(r) = row.vector<float>().transpose();
  const Tensor dlogits = cuda::upload(logits, stream);
  struct Options {
    float temperature;
    std::int64_t top_k;
    float top_p;
  };
  for (const Options o : {Options{1.0f, 0, 1.0f}, Options{0.8f, 10, 1.0f}, Options{1.3f, 0, 0.9f},
                          Options{0.8f, 10, 0.7f}, Options{1.0f, 1, 1.0f}}) {
    INFO("temperature " << o.temperature << ", top_k " << o.top_k << ", top_p " << o.top_p);
    GenerateOptions options;
    options.temperature = o.temperature;
    options.top_k = o.top_k;
    options.top_p = o.top_p;
    options.seed = 1234;
    const std::vector<std::int32_t> tokens = cuda::sample_rows(stream, dlogits, options, 5);
    CHECK(cuda::sample_rows(stream, dlogits, options, 5) == tokens);  // reproducible
    if (o.top_k != 1) {  // with one candidate every seed draws it
      options.seed = 1235;
      CHECK(cuda::sample_rows(stream, dlogits, options, 5) != tokens);
      options.seed = 1234;
    }

    // The host's replay of each draw: the CPU warpers' distribution and the same uniform, with
    // the CPU sampler's rule (first token whose cumulative probability exceeds u).
    std::vector<float> warped(row.span<float>().begin(), row.span<float>().end());
    warp_for_sampling(warped, options);
    const float max = *std::max_element(warped.begin(), warped.end());
    std::vector<double> p(static_cast<std::size_t>(vocab));
    double total = 0;
    for (std::size_t i = 0; i < p.size(); ++i) total += p[i] = std::isinf(warped[i]) ? 0.0 : std::exp(double(warped[i]) - max);
    int mismatches = 0;
    std::vector<int> counts(static_cast<std::size_t>(vocab), 0);
    for (std::int64_t r = 0; r < draws; ++r) {
      const std::int32_t t = tokens[static_cast<std::size_t>(r)];
      REQUIRE(t >= 0);
      REQUIRE(t < vocab);
      CHECK_MESSAGE(p[static_cast<std::size_t>(t)] > 0.0, "token " << t << " was filtered out on the CPU");
      ++counts[static_cast<std::size_t>(t)];
      const double target = cuda::philox_uniform(options.seed, 5, static_cast<std::uint32_t>(r)) * total;
      double cumulative = 0;
      std::int32_t expected = -1;
      for (std::size_t i = 0; i < p.size() && expected < 0; ++i)
        if ((cumulative += p[i]) > target && p[i] > 0) expected = static_cast<std::int32_t>(i);
      mismatches += expected != t;
    }
    CHECK_MESSAGE(mismatches <= 2, mismatches << " of " << draws << " draws differ from the host replay");
    for (std::size_t i = 0; i < p.size(); ++i)
      CHECK_MESSAGE(std::fabs(counts[i] / double(draws) - p[i] / total) < 0.05,  // > 4.5 sigma
                    "token " << i << ": frequency " << counts[i] / double(draws) << ", probability " << p[i] / total);
  }
  Tensor banned = Tensor::empty(DType::f32, {1, vocab});
  banned.vector<float>().setConstant(-std::numeric_limits<float>::infinity());
  GenerateOptions options;
  options.temperature = 1.0f;
  CHECK_THROWS_AS(cuda::sample_rows(stream, cuda::upload(banned, stream), options, 0), InputError);
}

#else  // built without CUDA

TEST_CASE("cuda kernels: not built") {
  CHECK_FALSE(ecr::cuda::available());
  MESSAGE("skipped: this build has no CUDA backend (ECR_WITH_CUDA=OFF): " << ecr::cuda::unavailable_reason());
}

#endif
