// Writes a bundle with one tensor, opens it again and checks what comes back: the smallest
// program that proves an installed ecr links and works.
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
    return sum == 10.f ? 0 : 1;
  } catch (const ecr::Error& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
}
