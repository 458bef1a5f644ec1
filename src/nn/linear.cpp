// Eigen must not split a chunk's GEMM across its own threads (as it would under OpenMP): the
// chunk is the unit of parallel work, and its reduction order must not depend on threads.
#define EIGEN_DONT_PARALLELIZE
#include "ecr/nn/linear.hpp"

#include <vector>

#include <fmt/format.h>

#include "cpu/isa.hpp"

namespace ecr::nn {

namespace {

cpu::WeightType weight_type(const Linear& layer) {
  const Tensor& w = layer.weight;
  if (w.device() != Device::cpu)
    fail<DeviceError>("linear: weight '{}' is on {}, not the CPU", w.name(), device_name(w.device()));
  const LinearKernel kernel = dtype_traits(w.dtype()).linear;
  if (kernel == LinearKernel::i8 &&
      (!layer.scale.defined() || layer.scale.dtype() != DType::f32 || layer.scale.numel() != layer.out()))
    fail<ShapeError>("linear: i8 weight '{}' needs an f32 scale of {} values", w.name(), layer.out());
  if (kernel != LinearKernel::i8 && layer.scale.defined())
    fail<ShapeError>("linear: {} weight '{}' takes no scale tensor (only i8 weights do)", dtype_name(w.dtype()),
                     w.name());
  switch (kernel) {
    case LinearKernel::f32: return cpu::WeightType::f32;
    case LinearKernel::f16: return cpu::WeightType::f16;
    case LinearKernel::bf16: return cpu::WeightType::bf16;
    case LinearKernel::i8: return cpu::WeightType::i8;
    case LinearKernel::q8_0: return cpu::WeightType::q8_0;
    case LinearKernel::q4_0: return cpu::WeightType::q4_0;
    case LinearKernel::q4_1: return cpu::WeightType::q4_1;
    case LinearKernel::q5_0: return cpu::WeightType::q5_0;
    case LinearKernel::q5_1: return cpu::WeightType::q5_1;
    case LinearKernel::q6_k: return cpu::WeightType::q6_k;
    case LinearKernel::q4_k: return cpu::WeightType::q4_k;
    case LinearKernel::q5_k: return cpu::WeightType::q5_k;
    case LinearKernel::q3_k: return cpu::WeightType::q3_k;
    case LinearKernel::q2_k: return cpu::WeightType::q2_k;
    case LinearKernel::none: break;
  }
  fail<ShapeError>("linear: weight '{}' is {}; expected f32, f16, bf16, i8 or a GGML block type", w.name(),
                   dtype_name(w.dtype()));
}

// Per-thread buffers of the 16-bit and int8 path, grown to the largest chunk seen.
template <class T>
T* scratch(std::vector<T>& buffer, std::int64_t size) {
  if (buffer.size() < static_cast<std::size_t>(size)) buffer.resize(static_cast<std::size_t>(size));
  return buffer.data();
}

// Every kernel below reads `in` values a row of x and writes `out` a row of y, trusting the shapes:
// a mismatch is a ShapeError here rather than a read past the end.
void check_shapes(ConstMatrix x, const Linear& layer, Matrix y) {
  if (x.cols() != layer.in() || y.rows() != x.rows() || y.cols() != layer.out() ||
      (layer.bias.defined() && layer.bias.numel() != layer.out()))
    fail<ShapeError>("linear '{}' ({} -> {}{}): input is {}x{}, output {}x{}", layer.weight.name(), layer.in(),
                     layer.out(), layer.bias.defined() ? fmt::format(", bias of {}", layer.bias.numel()) : "",
                     x.rows(), x.cols(), y.rows(), y.cols());
}

}  // namespace

void linear(ConstMatrix x, const Linear& layer, Matrix y, ThreadPool& pool, Activation activation, bool accumulate) {
  if (layer.weight.dtype() != DType::f32 || x.rows() <= cpu::kDotRows)  // which checks the shapes itself
    return cpu::linear_stored(cpu::active_kernels(), x, layer, y, pool, activation, accumulate);
  check_shapes(x, layer, y);
  const ConstMap w = view(layer.weight);
  const float* bias = layer.bias.defined() ? layer.bias.data<float>() : nullptr;
  const std::int64_t out = w.rows();
  const std::int64_t chunks = (out + kLinearChunk - 1) / kLinearChunk;
  pool.parallel_for(static_cast<std::size_t>(chunks), [&](std::size_t c) {
    const std::int64_t begin = static_cast<std::int64_t>(c) * kLinearChunk;
    const std::int64_t width = std::min(kLinearChunk, out - begin);
    auto block = y.middleCols(begin, width);
    const auto wt = w.middleRows(begin, width).transpose();
    if (accumulate)
      block.noalias() += x * wt;
    else
      block.noalias() = x * wt;
    if (bias) block.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias + begin, width);
    if (activation != Activation::none)
      activate(activation, block);
  });
}

void cpu::linear_stored(const LinearKernels& kernels, ConstMatrix x, const Linear& layer, Matrix y, ThreadPool& pool,
                        Activation activation, bool accumulate) {
  const auto type = static_cast<int>(weight_type(layer));
  check_shapes(x, layer, y);
  const std::int64_t rows = x.rows(), in = layer.in(), out = layer.out();
  if (rows == 0) return;
  const auto* weight = static_cast<const std::byte*>(layer.weight.raw());
  const std::size_t row_bytes = ecr::row_bytes(layer.weight.dtype(), in, layer.weight.name());
  const float* scale = layer.scale.defined() ? layer.scale.data<float>() : nullptr;
  const float* bias = layer.bias.defined() ? layer.bias.data<float>() : nullptr;
  // Prefill with bf16 weights on a CPU with a bf16 dot product: x rounded to bf16 once for every
  // chunk, unless the layer asks for exact activations.
  const bool bf16_gemm = rows > kDotRows && type == static_cast<int>(WeightType::bf16) && kernels.gemm_bf16 &&
                         layer.activations != Activations::exact;
  const std::int64_t ldx16 = in + (in & 1);
  std::vector<std::uint16_t> x16;  // per call: a few hundred KiB against milliseconds of GEMM
  if (bf16_gemm) {
    x16.resize(static_cast<std::size_t>(rows * ldx16));
    kernels.to_bf16(x.data(), x.outerStride(), rows, in, x16.data(), ldx16);
  }
  // 8-bit activations: each row of x quantized once, before the chunks share it.
  const ActivationBlocks blocks = dtype_traits(layer.weight.dtype()).activations;
  const bool q8 = layer.activations == Activations::q8 && kernels.dot_q8[type] &&
                  (blocks == ActivationBlocks::q8_0 || blocks == ActivationBlocks::q8_1);
  const bool with_sum = blocks == ActivationBlocks::q8_1;
  const std::int64_t ldxq = q8 ? q8_row_bytes(in, with_sum) : 0;
  // The calling thread's buffer, passed to the chunks as a pointer (a thread_local named inside
  // them would be each worker's own).
  thread_local std::vector<std::uint8_t> quantized;
  const std::uint8_t* xq = nullptr;
  if (q8) {
    const auto quantize = with_sum ? kernels.quantize_q8_1 : kernels.quantize_q8_0;
    std::uint8_t* dst = scratch(quantized, rows * ldxq);
    for (std::int64_t r = 0; r < rows; ++r) quantize(x.data() + r * x.outerStride(), in, dst + r * ldxq);
    xq = dst;
  }
  const std::int64_t chunks = (out + kLinearChunk - 1) / kLinearChunk;
  pool.parallel_for(static_cast<std::size_t>(chunks), [&](std::size_t c) {
    thread_local std::vector<float> widened, product;
    thread_local std::vector<std::uint32_t> packed;
    const std::int64_t begin = static_cast<std::int64_t>(c) * kLinearChunk;
    const std::int64_t width = std::min(kLinearChunk, out - begin);
    const std::byte* w = weight + static_cast<std::size_t>(begin) * row_bytes;
    auto block = y.middleCols(begin, width);
    MutableMap p(scratch(product, rows * width), rows, width, Eigen::OuterStride<>(width));
    bool in_product = true;  // the sums are in p, still to be scaled, biased and stored into y
    if (q8) {
      kernels.dot_q8[type](xq, ldxq, rows, w, in, width, p.data(), width);
    } else if (rows <= kDotRows) {
      kernels.dot[type](x.data(), x.outerStride(), static_cast<int>(rows), w, in, width, p.data(), width);
    } else if (bf16_gemm) {
      kernels.gemm_bf16(x16.data(), ldx16, rows, w, in, width, scratch(packed, bf16_packed_words(in, width)), p.data(),
                        width);
    } else {
      kernels.widen[type](w, scratch(widened, width * in), width * in);
      const ConstMap wt(widened.data(), width, in, Eigen::OuterStride<>(in));
      if (!scale) {  // the f32 path's GEMM on the same values: no product buffer needed
        in_product = false;
        if (accumulate)
          block.noalias() += x * wt.transpose();
        else
          block.noalias() = x * wt.transpose();
      } else {
        p.noalias() = x * wt.transpose();
      }
    }
    if (in_product) {
      if (scale) p.array().rowwise() *= Eigen::Map<const Eigen::RowVectorXf>(scale + begin, width).array();
      if (accumulate)
        block += p;
      else
        block = p;
    }
    if (bias) block.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias + begin, width);
    if (activation != Activation::none) activate(activation, block);
  });
}

void gather_rows(const Linear& table, std::span<const std::int32_t> ids, Matrix out, const char* what) {
  if (table.weight.dtype() == DType::f32) return gather_rows(view(table.weight), ids, out, what);
  const cpu::LinearKernels& kernels = cpu::active_kernels();
  const auto type = static_cast<int>(weight_type(table));
  const std::int64_t in = table.in();
  const std::size_t row_bytes = ecr::row_bytes(table.weight.dtype(), in, table.weight.name());
  const auto* weight = static_cast<const std::byte*>(table.weight.raw());
  const float* scale = table.scale.defined() ? table.scale.data<float>() : nullptr;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::int32_t id = ids[i];
    if (id < 0 || id >= table.out()) fail<InputError>("{} {} is outside [0, {})", what, id, table.out());
    auto row = out.row(static_cast<Eigen::Index>(i));
    kernels.widen[type](weight + static_cast<std::size_t>(id) * row_bytes, row.data(), in);
    if (scale) row *= scale[id];
  }
}

bool uses_q8_activations(const Linear& layer) {
  const ActivationBlocks blocks = dtype_traits(layer.weight.dtype()).activations;
  return layer.activations == Activations::q8 && cpu::active_kernels().dot_q8[static_cast<int>(weight_type(layer))] &&
         (blocks == ActivationBlocks::q8_0 || blocks == ActivationBlocks::q8_1);
}

std::string_view linear_kernel_level() { return cpu::active_kernels().level; }

}  // namespace ecr::nn
