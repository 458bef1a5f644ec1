#include "ecr/models/generate_cuda.hpp"

#include <algorithm>

#include "../device/tensor_cuda.hpp"
#include "ecr/device/transfer_cuda.hpp"
#include "philox.cuh"
#include "sampling.cuh"

namespace ecr::cuda {

using detail::native;
using detail::ptr;

namespace {

void expect_logits(const Tensor& logits, const char* what) {
  detail::expect_device(logits, what);
  if (logits.dtype() != DType::f32 || logits.rank() < 1 || logits.rank() > 2 || logits.dim(-1) == 0)
    fail<ShapeError>("{}: logits '{}' must be f32 (vocab) or (rows, vocab), found {} {}", what, logits.name(),
                     dtype_name(logits.dtype()), shape_string(logits.shape()));
}

void expect_row(const Tensor& logits, const char* what) {
  expect_logits(logits, what);
  if (detail::rows(logits) != 1)
    fail<ShapeError>("{}: logits '{}' must be one row, found {}", what, logits.name(), shape_string(logits.shape()));
}

std::vector<std::int32_t> fetch(Stream& stream, const Tensor& tokens) {
  const Tensor host = download(tokens, stream);
  return {host.data<std::int32_t>(), host.data<std::int32_t>() + host.numel()};
}

Tensor upload_context(Stream& stream, std::span<const std::int32_t> context) {
  const auto n = static_cast<std::int64_t>(context.size());
  return upload(Tensor::from_vector(std::vector<std::int32_t>(context.begin(), context.end()), {n}, "context"), stream);
}

}  // namespace

std::vector<std::int32_t> argmax_rows(Stream& stream, const Tensor& logits) {
  expect_logits(logits, "argmax_rows");
  const std::int64_t rows = detail::rows(logits);
  const Tensor tokens = empty_device(DType::i32, {rows}, "tokens");
  ECR_CUDA_CHECK(kernels::argmax_rows(ptr<float>(logits), rows, detail::narrow(logits.dim(-1), "argmax_rows"),
                                      ptr<std::int32_t>(tokens), native(stream)));
  return fetch(stream, tokens);
}

std::vector<std::int32_t> sample_rows(Stream& stream, const Tensor& logits, const lm::GenerateOptions& options,
                                      std::int64_t step) {
  expect_logits(logits, "sample_rows");
  if (!(options.temperature > 0.0f) || options.top_k < 0 || !(options.top_p > 0.0f && options.top_p <= 1.0f))
    fail<InputError>("sample_rows: temperature {} must be > 0, top_k {} >= 0 and top_p {} in (0, 1]",
                     options.temperature, options.top_k, options.top_p);
  const std::int64_t rows = detail::rows(logits);
  const int vocab = detail::narrow(logits.dim(-1), "sample_rows");
  const Tensor tokens = empty_device(DType::i32, {rows}, "tokens");
  const kernels::SamplingParams params{options.temperature,
                                       static_cast<int>(std::min<std::int64_t>(options.top_k, vocab)), options.top_p,
                                       options.seed};
  ECR_CUDA_CHECK(kernels::sample_rows(ptr<float>(logits), rows, vocab, params, step, nullptr, ptr<std::int32_t>(tokens),
                                      native(stream)));
  std::vector<std::int32_t> out = fetch(stream, tokens);
  for (const std::int32_t t : out)
    if (t < 0) fail<InputError>("generate: every token is banned");
  return out;
}

void apply_repetition_penalty(Stream& stream, Tensor logits, std::span<const std::int32_t> context, float penalty) {
  expect_row(logits, "apply_repetition_penalty");
  if (penalty == 1.0f || context.empty()) return;
  const Tensor device_context = upload_context(stream, context);
  const auto n = static_cast<std::int64_t>(context.size());
  ECR_CUDA_CHECK(kernels::repetition_penalty(ptr<float>(logits), detail::narrow(logits.dim(-1), "penalty"),
                                             ptr<std::int32_t>(device_context), n, nullptr, n, penalty,
                                             native(stream)));
  stream.synchronize();  // device_context is freed on return
}

void ban_repeated_ngrams(Stream& stream, Tensor logits, std::span<const std::int32_t> context, std::int64_t n) {
  expect_row(logits, "ban_repeated_ngrams");
  if (n <= 0 || context.empty()) return;
  const Tensor device_context = upload_context(stream, context);
  const auto length = static_cast<std::int64_t>(context.size());
  ECR_CUDA_CHECK(kernels::ban_repeated_ngrams(ptr<float>(logits), detail::narrow(logits.dim(-1), "n-gram ban"),
                                              ptr<std::int32_t>(device_context), length, nullptr, length,
                                              detail::narrow(n, "n-gram ban"), native(stream)));
  stream.synchronize();
}

double philox_uniform(std::uint64_t seed, std::uint64_t step, std::uint32_t row) {
  return kernels::philox_uniform(seed, step, row);
}

}  // namespace ecr::cuda
