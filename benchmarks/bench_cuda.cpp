// bench_cuda: the CUDA backend on this machine's GPU, printed as a table (and as JSON with
// --json FILE, which tools/gpu_compare.py puts beside PyTorch / HuggingFace / PyG):
//
//   memcpy         device-to-device cudaMemcpy of 1 GiB: the bandwidth ceiling (read + write)
//   attention      the split-K decode kernel alone: K and V bytes read per launch / time, in
//                  f32 and f16, against that ceiling
//   gpt2 decode    batch-1 greedy generation with a 12 x 768 GPT-2 (vocab 50257, random weights):
//                  new tokens / wall time of Gpt2Session::generate (prefill of the prompt and the
//                  one-off graph capture included, as HF's generate() time includes its prefill),
//                  and the steady rate between the first and the last token
//   gpt2 batch     Gpt2Device::generate_batch: 8 greedy sequences with different prompts decoded
//                  together (no CUDA graph), all new tokens / wall time, prefill included
//   roberta        RobertaDevice::forward of a 12 x 768 RoBERTa (roberta-base's shape, random
//                  weights) over a batch of 8 sequences of 64 to 128 tokens: wall time per batch
//   rgcn           one R-GCN encode of a 31,162-entity KG (DBpedia subgraph of the ECR / UniCRS
//                  ReDial setup) with random edges, 25 relations (UniCRS's 24 DBpedia relations +
//                  self loop), 8 bases, d = 384; the CPU EntityEncoder on all cores for scale
//
// Times are medians over --reps runs after a warm-up; kernel times use CUDA events.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "attention.cuh"
#include "ecr/core/thread_pool.hpp"
#include "ecr/device/cuda.hpp"
#include "ecr/device/transfer_cuda.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/models/entity_encoder.hpp"
#include "ecr/models/entity_encoder_cuda.hpp"
#include "ecr/models/gpt2_cuda.hpp"
#include "ecr/models/roberta_cuda.hpp"

namespace {

namespace kernels = ecr::kernels;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "bench_cuda: %s: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class F>
double median_wall_ms(int reps, F&& run) {
  run();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return median(ms);
}

// Milliseconds per call of `launch` on `stream`, timed with events over `iters` back-to-back calls.
template <class F>
double event_ms(cudaStream_t stream, int iters, F&& launch) {
  launch();
  check(cudaStreamSynchronize(stream), "warm-up");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  std::vector<double> ms;
  for (int rep = 0; rep < 5; ++rep) {
    check(cudaEventRecord(start, stream), "record");
    for (int i = 0; i < iters; ++i) launch();
    check(cudaEventRecord(stop, stream), "record");
    check(cudaEventSynchronize(stop), "sync");
    float elapsed = 0;
    check(cudaEventElapsedTime(&elapsed, start, stop), "elapsed");
    ms.push_back(elapsed / iters);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return median(ms);
}

double memcpy_gbps(cudaStream_t stream) {
  const std::size_t bytes = std::size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  check(cudaMalloc(&a, bytes), "cudaMalloc");
  check(cudaMalloc(&b, bytes), "cudaMalloc");
  check(cudaMemsetAsync(a, 1, bytes, stream), "memset");
  const double ms = event_ms(stream, 10, [&] { check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream), "copy"); });
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (ms * 1e-3) / 1e9;  // every byte is read once and written once
}

template <class T>
json attention_decode(cudaStream_t stream, int batch, int heads, int head_dim, int keys, int multiprocessors,
                      const char* dtype) {
  const std::size_t cache = static_cast<std::size_t>(batch) * heads * keys * head_dim;
  T *q = nullptr, *k = nullptr, *v = nullptr, *out = nullptr;
  float* workspace = nullptr;
  std::int32_t* arrays = nullptr;
  const kernels::DecodeSplit split = kernels::plan_decode(batch, heads, keys, multiprocessors);
  const std::size_t ws = std::max<std::size_t>(1, kernels::decode_workspace_floats(batch, heads, split, head_dim));
  check(cudaMalloc(&q, sizeof(T) * batch * heads * head_dim), "cudaMalloc");
  check(cudaMalloc(&out, sizeof(T) * batch * heads * head_dim), "cudaMalloc");
  check(cudaMalloc(&k, sizeof(T) * cache), "cudaMalloc");
  check(cudaMalloc(&v, sizeof(T) * cache), "cudaMalloc");
  check(cudaMalloc(&workspace, sizeof(float) * ws), "cudaMalloc");
  check(cudaMalloc(&arrays, sizeof(std::int32_t) * 3 * batch), "cudaMalloc");
  check(cudaMemsetAsync(q, 0, sizeof(T) * batch * heads * head_dim, stream), "memset");
  check(cudaMemsetAsync(k, 0, sizeof(T) * cache, stream), "memset");
  check(cudaMemsetAsync(v, 0, sizeof(T) * cache, stream), "memset");
  std::vector<std::int32_t> host(3 * static_cast<std::size_t>(batch));
  for (int b = 0; b < batch; ++b) {
    host[static_cast<std::size_t>(b)] = b;                        // q_start
    host[static_cast<std::size_t>(batch + b)] = 1;                // q_count
    host[static_cast<std::size_t>(2 * batch + b)] = keys - 1;     // past: the query is the last key
  }
  check(cudaMemcpy(arrays, host.data(), sizeof(std::int32_t) * host.size(), cudaMemcpyHostToDevice), "upload");
  kernels::AttentionParams<T> p;
  p.q = q;
  p.k = k;
  p.v = v;
  p.out = out;
  p.q_stride = p.out_stride = static_cast<std::int64_t>(heads) * head_dim;
  p.kv_head_stride = static_cast<std::int64_t>(keys) * head_dim;
  p.kv_seq_stride = heads * p.kv_head_stride;
  p.q_start = arrays;
  p.q_count = arrays + batch;
  p.past = arrays + 2 * batch;
  p.batch = batch;
  p.heads = heads;
  p.head_dim = head_dim;
  p.scale = 0.125f;
  const double ms = event_ms(stream, 50, [&] { check(kernels::attention_decode(p, split, workspace, stream), "decode"); });
  const double bytes = 2.0 * sizeof(T) * static_cast<double>(cache);
  for (void* ptr : {static_cast<void*>(q), static_cast<void*>(out), static_cast<void*>(k), static_cast<void*>(v),
                    static_cast<void*>(workspace), static_cast<void*>(arrays)})
    cudaFree(ptr);
  return {{"dtype", dtype}, {"batch", batch},  {"heads", heads},        {"head_dim", head_dim},
          {"keys", keys},   {"splits", split.splits}, {"us", ms * 1e3}, {"gbps", bytes / (ms * 1e-3) / 1e9}};
}

// A GPT-2 small-shaped LM with random weights, as a bundle in memory.
ecr::Bundle random_gpt2(int layers, int embd, int heads, int vocab, int positions) {
  const json config{{"n_layer", layers}, {"n_head", heads}, {"n_embd", embd}, {"n_positions", positions},
                    {"vocab_size", vocab}, {"activation_function", "gelu_new"}};
  ecr::BundleWriter writer(json{{"ecr_bundle", 1}, {"components", {{"lm", {{"type", "gpt2"}, {"config", config}}}}}});
  std::mt19937 rng(1);
  const auto add = [&](const std::string& name, ecr::Shape shape, float scale, float center = 0.0f) {
    ecr::Tensor t = ecr::Tensor::empty(ecr::DType::f32, std::move(shape));
    std::uniform_real_distribution<float> u(center - scale, center + scale);
    for (float& x : t.span<float>()) x = u(rng);
    writer.add("lm/transformer." + name, t);
  };
  const std::int64_t d = embd;
  add("wte.weight", {vocab, d}, 0.05f);
  add("wpe.weight", {positions, d}, 0.02f);
  for (int l = 0; l < layers; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    for (const char* ln : {"ln_1", "ln_2"}) {
      add(h + ln + ".weight", {d}, 0.1f, 1.0f);
      add(h + ln + ".bias", {d}, 0.05f);
    }
    add(h + "attn.c_attn.weight", {d, 3 * d}, 0.05f);
    add(h + "attn.c_attn.bias", {3 * d}, 0.02f);
    add(h + "attn.c_proj.weight", {d, d}, 0.05f);
    add(h + "attn.c_proj.bias", {d}, 0.02f);
    add(h + "mlp.c_fc.weight", {d, 4 * d}, 0.05f);
    add(h + "mlp.c_fc.bias", {4 * d}, 0.02f);
    add(h + "mlp.c_proj.weight", {4 * d, d}, 0.03f);
    add(h + "mlp.c_proj.bias", {d}, 0.02f);
  }
  add("ln_f.weight", {d}, 0.1f, 1.0f);
  add("ln_f.bias", {d}, 0.05f);
  return ecr::Bundle::from_bytes(writer.bytes(), "random-gpt2", {.verify_checksums = false, .memory_map = false});
}

// A roberta-base-shaped encoder with random weights, as a bundle in memory.
ecr::Bundle random_roberta(int layers, int hidden, int heads, int vocab, int positions) {
  const json config{{"num_hidden_layers", layers}, {"num_attention_heads", heads}, {"hidden_size", hidden},
                    {"intermediate_size", 4 * hidden}, {"max_position_embeddings", positions},
                    {"type_vocab_size", 1}, {"vocab_size", vocab}, {"pad_token_id", 1}, {"hidden_act", "gelu"}};
  ecr::BundleWriter writer(json{{"ecr_bundle", 1}, {"components", {{"text", {{"type", "roberta"}, {"config", config}}}}}});
  std::mt19937 rng(3);
  const auto add = [&](const std::string& name, ecr::Shape shape, float scale, float center = 0.0f) {
    ecr::Tensor t = ecr::Tensor::empty(ecr::DType::f32, std::move(shape));
    std::uniform_real_distribution<float> u(center - scale, center + scale);
    for (float& x : t.span<float>()) x = u(rng);
    writer.add("text/" + name, t);
  };
  const std::int64_t d = hidden;
  const auto dense = [&](const std::string& prefix, std::int64_t in, std::int64_t out) {
    add(prefix + ".weight", {out, in}, 0.05f);
    add(prefix + ".bias", {out}, 0.02f);
  };
  const auto norm = [&](const std::string& prefix) {
    add(prefix + ".weight", {d}, 0.1f, 1.0f);
    add(prefix + ".bias", {d}, 0.05f);
  };
  add("embeddings.word_embeddings.weight", {vocab, d}, 0.05f);
  add("embeddings.position_embeddings.weight", {positions, d}, 0.02f);
  add("embeddings.token_type_embeddings.weight", {1, d}, 0.02f);
  norm("embeddings.LayerNorm");
  for (int l = 0; l < layers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    for (const char* part : {"query", "key", "value"}) dense(p + "attention.self." + part, d, d);
    dense(p + "attention.output.dense", d, d);
    norm(p + "attention.output.LayerNorm");
    dense(p + "intermediate.dense", d, 4 * d);
    dense(p + "output.dense", 4 * d, d);
    norm(p + "output.LayerNorm");
  }
  return ecr::Bundle::from_bytes(writer.bytes(), "random-roberta", {.verify_checksums = false, .memory_map = false});
}

json roberta_encode(const ecr::Bundle& bundle, ecr::DType storage, ecr::cuda::GemmMath math, int reps) {
  const ecr::cuda::RobertaDevice model = ecr::cuda::RobertaDevice::load(bundle, "text", {storage, math});
  std::mt19937 rng(4);
  std::vector<std::vector<std::int32_t>> batch(8);
  std::int64_t tokens = 0;
  for (std::size_t b = 0; b < batch.size(); ++b) {
    batch[b].resize(64 + 8 * b);
    for (auto& t : batch[b]) t = std::uniform_int_distribution<std::int32_t>(3, 50000)(rng);
    tokens += static_cast<std::int64_t>(batch[b].size());
  }
  ecr::cuda::Stream stream;
  const double ms = median_wall_ms(reps, [&] { model.forward(stream, batch); });
  return {{"storage", std::string(ecr::dtype_name(storage))},
          {"math", math == ecr::cuda::GemmMath::exact ? "exact" : "tensor_cores"},
          {"batch", static_cast<int>(batch.size())},
          {"tokens", tokens},
          {"ms", ms}};
}

json gpt2_decode(const ecr::Bundle& bundle, ecr::DType storage, ecr::cuda::GemmMath math, int prompt_tokens,
                 int new_tokens, int reps) {
  const ecr::cuda::Gpt2Device model = ecr::cuda::Gpt2Device::load(bundle, "lm", {storage, math});
  std::mt19937 rng(2);
  std::vector<std::int32_t> prompt(static_cast<std::size_t>(prompt_tokens));
  for (auto& t : prompt) t = std::uniform_int_distribution<std::int32_t>(0, 50000)(rng);
  ecr::lm::GenerateOptions options;
  options.max_new_tokens = new_tokens;
  std::vector<double> total, steady;
  for (int rep = 0; rep <= reps; ++rep) {  // rep 0 warms up
    ecr::cuda::Gpt2Session session = model.start(prompt_tokens + new_tokens + 1);
    Clock::time_point first;
    options.on_token = [&, count = 0](std::int32_t) mutable {
      if (count++ == 0) first = Clock::now();
      return true;
    };
    const auto t0 = Clock::now();
    const ecr::lm::Generation g = session.generate(prompt, options);
    const auto t1 = Clock::now();
    if (static_cast<int>(g.tokens.size()) != new_tokens) std::exit(2);
    if (rep == 0) continue;
    total.push_back(new_tokens / std::chrono::duration<double>(t1 - t0).count());
    steady.push_back((new_tokens - 1) / std::chrono::duration<double>(t1 - first).count());
  }
  return {{"storage", std::string(ecr::dtype_name(storage))},
          {"math", math == ecr::cuda::GemmMath::exact ? "exact" : "tensor_cores"},
          {"prompt", prompt_tokens},
          {"new_tokens", new_tokens},
          {"tokens_per_s", median(total)},
          {"steady_tokens_per_s", median(steady)}};
}

json gpt2_generate_batch(const ecr::Bundle& bundle, ecr::DType storage, ecr::cuda::GemmMath math, int batch,
                        int prompt_tokens, int new_tokens, int reps) {
  const ecr::cuda::Gpt2Device model = ecr::cuda::Gpt2Device::load(bundle, "lm", {storage, math});
  std::mt19937 rng(3);
  std::vector<std::vector<std::int32_t>> prompts(static_cast<std::size_t>(batch));
  std::vector<ecr::lm::GenerateRequest> requests;
  ecr::lm::GenerateOptions options;
  options.max_new_tokens = new_tokens;
  for (auto& prompt : prompts) {
    prompt.resize(static_cast<std::size_t>(prompt_tokens));
    for (auto& t : prompt) t = std::uniform_int_distribution<std::int32_t>(0, 50000)(rng);
    requests.push_back({prompt, {}, options});
  }
  std::vector<double> rate;
  for (int rep = 0; rep <= reps; ++rep) {  // rep 0 warms up
    const auto t0 = Clock::now();
    const auto generations = model.generate_batch(requests);
    const auto t1 = Clock::now();
    for (const auto& g : generations)
      if (static_cast<int>(g.tokens.size()) != new_tokens) std::exit(2);
    if (rep > 0) rate.push_back(batch * new_tokens / std::chrono::duration<double>(t1 - t0).count());
  }
  return {{"storage", std::string(ecr::dtype_name(storage))},
          {"math", math == ecr::cuda::GemmMath::exact ? "exact" : "tensor_cores"},
          {"batch", batch},
          {"prompt", prompt_tokens},
          {"new_tokens", new_tokens},
          {"tokens_per_s", median(rate)}};
}

struct Graph {
  ecr::RelationCsr csr;
  std::int64_t edges = 0;
};

Graph random_kg(std::int64_t nodes, std::int64_t relations, std::int64_t edges) {
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<std::int64_t> node(0, nodes - 1), rel(0, relations - 1);
  std::vector<std::int64_t> s(static_cast<std::size_t>(edges)), t(s.size()), r(s.size());
  for (std::size_t e = 0; e < s.size(); ++e) {
    s[e] = node(rng);
    t[e] = node(rng);
    r[e] = rel(rng);
  }
  return {ecr::RelationCsr::from_edges(nodes, relations, s, t, r), edges};
}

json rgcn(const Graph& g, std::int64_t dim, std::int64_t bases, ecr::DType storage, ecr::cuda::GemmMath math, int reps) {
  std::mt19937 rng(4);
  const auto random = [&](ecr::Shape shape, float scale) {
    ecr::Tensor t = ecr::Tensor::empty(ecr::DType::f32, std::move(shape));
    std::uniform_real_distribution<float> u(-scale, scale);
    for (float& x : t.span<float>()) x = u(rng);
    return t;
  };
  const std::int64_t n = g.csr.num_nodes, relations = g.csr.num_relations;
  const ecr::Tensor b = random({bases, dim, dim}, 0.05f), comp = random({relations, bases}, 0.5f);
  const ecr::Tensor root = random({dim, dim}, 0.05f), bias = random({dim}, 0.1f), x = random({n, dim}, 1.0f);
  ecr::cuda::Stream stream;
  const ecr::cuda::EntityEncoder encoder(b, comp, root, bias, stream, storage, math);
  const ecr::cuda::RelationGraph graph = ecr::cuda::RelationGraph::upload(g.csr, stream);
  const ecr::Tensor dx = ecr::cuda::upload(ecr::cuda::host_cast(x, storage), stream);
  const double ms = median_wall_ms(reps, [&] {
    encoder.forward(dx, graph, stream);  // returns after the stream finishes
  });
  json j{{"storage", std::string(ecr::dtype_name(storage))},
         {"math", math == ecr::cuda::GemmMath::exact ? "exact" : "tensor_cores"},
         {"nodes", n},
         {"edges", g.edges},
         {"relations", relations},
         {"bases", bases},
         {"dim", dim},
         {"ms", ms}};
  if (storage == ecr::DType::f32 && math == ecr::cuda::GemmMath::exact) {
    ecr::ThreadPool pool;
    const ecr::EntityEncoder cpu(b, comp, root, bias);
    j["cpu_ms"] = median_wall_ms(1, [&] { cpu.forward(x, g.csr, pool); });
    j["cpu_threads"] = pool.size();
  }
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  int reps = 3, new_tokens = 256, prompt_tokens = 32;
  std::int64_t edges = 300000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_cuda: %s needs a value\n", a.c_str());
        std::exit(64);
      }
      return argv[++i];
    };
    if (a == "--json") json_path = next();
    else if (a == "--reps") reps = std::stoi(next());
    else if (a == "--new-tokens") new_tokens = std::stoi(next());
    else if (a == "--prompt-tokens") prompt_tokens = std::stoi(next());
    else if (a == "--edges") edges = std::stoll(next());
    else {
      std::fprintf(stderr,
                   "usage: bench_cuda [--json FILE] [--reps N] [--new-tokens N] [--prompt-tokens N] [--edges N]\n");
      return 64;
    }
  }
  if (!ecr::cuda::available()) {
    std::fprintf(stderr, "bench_cuda: no GPU: %s\n", ecr::cuda::unavailable_reason().c_str());
    return 3;
  }
  const ecr::cuda::DeviceInfo info = ecr::cuda::device_info(0);
  json result{{"device", {{"name", info.name},
                          {"memory_gib", info.total_memory / double(1 << 30)},
                          {"compute_capability", fmt::format("{}.{}", info.compute_major, info.compute_minor)},
                          {"multiprocessors", info.multiprocessors}}}};
  cudaStream_t stream = nullptr;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");

  const double copy = memcpy_gbps(stream);
  result["memcpy_d2d_gbps"] = copy;
  json attention = json::array();
  for (const auto& [batch, keys] : std::vector<std::pair<int, int>>{{1, 1024}, {1, 8192}, {16, 4096}}) {
    attention.push_back(attention_decode<float>(stream, batch, 12, 64, keys, info.multiprocessors, "f32"));
    attention.push_back(attention_decode<__half>(stream, batch, 12, 64, keys, info.multiprocessors, "f16"));
  }
  result["attention_decode"] = attention;

  const ecr::Bundle bundle = random_gpt2(12, 768, 12, 50257, 1024);
  result["gpt2_decode"] = json::array({gpt2_decode(bundle, ecr::DType::f32, ecr::cuda::GemmMath::exact, prompt_tokens,
                                                   new_tokens, reps),
                                       gpt2_decode(bundle, ecr::DType::f16, ecr::cuda::GemmMath::tensor_cores,
                                                   prompt_tokens, new_tokens, reps)});
  result["gpt2_generate_batch"] = json::array(
      {gpt2_generate_batch(bundle, ecr::DType::f32, ecr::cuda::GemmMath::exact, 8, prompt_tokens, new_tokens, reps)});

  const ecr::Bundle roberta = random_roberta(12, 768, 12, 50265, 514);
  result["roberta_encode"] = json::array({roberta_encode(roberta, ecr::DType::f32, ecr::cuda::GemmMath::exact, reps),
                                          roberta_encode(roberta, ecr::DType::f16, ecr::cuda::GemmMath::tensor_cores,
                                                         reps)});

  const Graph kg = random_kg(31162, 25, edges);
  result["rgcn"] = json::array({rgcn(kg, 384, 8, ecr::DType::f32, ecr::cuda::GemmMath::exact, 10),
                                rgcn(kg, 384, 8, ecr::DType::f16, ecr::cuda::GemmMath::tensor_cores, 10)});
  cudaStreamDestroy(stream);

  std::printf("%s\n\n", fmt::format("ecr CUDA backend on {} ({} SMs, {:.0f} GiB)", info.name, info.multiprocessors,
                                    result["device"]["memory_gib"].get<double>())
                            .c_str());
  std::printf("| measurement | value |\n|---|---|\n");
  std::printf("| cudaMemcpy device-to-device (1 GiB, read + write) | %.0f GB/s |\n", copy);
  for (const json& a : result["attention_decode"])
    std::printf("| attention decode %s, batch %d, 12 heads x 64, %d keys (%d splits) | %.1f us, %.0f GB/s (%.0f%% of memcpy) |\n",
                a["dtype"].get<std::string>().c_str(), a["batch"].get<int>(), a["keys"].get<int>(),
                a["splits"].get<int>(), a["us"].get<double>(), a["gbps"].get<double>(),
                100.0 * a["gbps"].get<double>() / copy);
  for (const json& g : result["gpt2_decode"])
    std::printf("| GPT-2 12x768 greedy, batch 1, %s %s, %d + %d tokens | %.0f tokens/s (steady %.0f) |\n",
                g["storage"].get<std::string>().c_str(), g["math"].get<std::string>().c_str(), g["prompt"].get<int>(),
                g["new_tokens"].get<int>(), g["tokens_per_s"].get<double>(), g["steady_tokens_per_s"].get<double>());
  for (const json& g : result["gpt2_generate_batch"])
    std::printf("| GPT-2 12x768 greedy, generate_batch of %d, %s %s, %d + %d tokens each | %.0f tokens/s |\n",
                g["batch"].get<int>(), g["storage"].get<std::string>().c_str(), g["math"].get<std::string>().c_str(),
                g["prompt"].get<int>(), g["new_tokens"].get<int>(), g["tokens_per_s"].get<double>());
  for (const json& r : result["roberta_encode"])
    std::printf("| RoBERTa 12x768 encode, batch %d, %lld tokens, %s %s | %.2f ms |\n", r["batch"].get<int>(),
                static_cast<long long>(r["tokens"].get<std::int64_t>()), r["storage"].get<std::string>().c_str(),
                r["math"].get<std::string>().c_str(), r["ms"].get<double>());
  for (const json& r : result["rgcn"]) {
    std::printf("| R-GCN encode, %lld nodes, %lld edges, R %lld, B %lld, d %lld, %s %s | %.2f ms |\n",
                static_cast<long long>(r["nodes"].get<std::int64_t>()), static_cast<long long>(r["edges"].get<std::int64_t>()),
                static_cast<long long>(r["relations"].get<std::int64_t>()), static_cast<long long>(r["bases"].get<std::int64_t>()),
                static_cast<long long>(r["dim"].get<std::int64_t>()), r["storage"].get<std::string>().c_str(),
                r["math"].get<std::string>().c_str(), r["ms"].get<double>());
    if (r.contains("cpu_ms"))
      std::printf("| R-GCN encode, same graph, CPU EntityEncoder (%d threads) | %.1f ms |\n", r["cpu_threads"].get<int>(),
                  r["cpu_ms"].get<double>());
  }
  if (!json_path.empty()) std::ofstream(json_path) << result.dump(2) << "\n";
  return 0;
}
