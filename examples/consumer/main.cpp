// Writes a bundle with one tensor, opens it again and checks what comes back: the smallest
// program that proves an installed ecr links and works. Then, when the shipped model is found
// (ecr::default_bundle_path()), one recommendation and reply from it.
#include <cstdio>
#include <filesystem>

#include <ecr/ecr.hpp>

int main(int argc, char** argv) {
  const std::filesystem::path path = argc > 1 ? argv[1] : "consumer.ecr";
  ecr::Tensor t = ecr::Tensor::from_vector<float>({1.f, 2.f, 3.f, 4.f}, {2, 2});
  ecr::BundleWriter writer(nlohmann::json{{"ecr_bundle", 1}, {"note", "written by the consumer example"}});
  writer.add("demo/weight", t, ecr::Codec::zstd);
  writer.write(path);
  try {
    const ecr::Bundle bundle = ecr::Bundle::open(path);
    const ecr::Tensor back = bundle.tensor("demo/weight", ecr::DType::f32, {2, 2});
    const float sum = back.matrix<float>().sum();
    std::printf("consumer: read %s, sum %.1f\n", path.c_str(), sum);
    if (sum != 10.f) return 1;
    std::filesystem::path model;
    try {
      model = ecr::default_bundle_path();
    } catch (const ecr::ConfigError& e) {
      std::printf("consumer: no shipped model here (%s)\n", e.what());
      return 0;
    }
    const ecr::Engine engine = ecr::Engine::load(model);  // one load for both views
    const auto recommender = ecr::Recommender::load(engine);
    const auto responder = ecr::Responder::load(engine);
    const ecr::Dialog dialog = ecr::Dialog::parse(
        R"({"turns": [{"role": "user", "text": "I love horror movies like The Shining. Any ideas?"}]})");
    const auto turn = ecr::Responder::converse(recommender, responder, dialog, {.top_k = 3});
    std::printf("consumer: %s recommends", model.filename().c_str());
    for (const auto& item : turn.recommendation.items) std::printf(" | %s", item.name.c_str());
    std::printf("\nconsumer: reply: %s\n", turn.response.text.c_str());
    return turn.recommendation.items.size() == 3 && !turn.response.text.empty() ? 0 : 1;
  } catch (const ecr::Error& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
}
