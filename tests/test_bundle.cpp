// The bundle format: round trips, zero-copy mapping, and hostile input (every truncation and
// thousands of seeded corruptions end in a FormatError or a correct load).
#include <cstring>
#include <fstream>
#include <random>
#include <vector>

#include <zlib.h>

#include "ecr/io/bundle.hpp"
#include "support.hpp"

using namespace ecr;

namespace {

Tensor iota_f32(Shape shape, float start = 0.5f) {
  Tensor t = Tensor::empty(DType::f32, std::move(shape));
  float v = start;
  for (float& x : t.span<float>()) x = v, v += 0.25f;
  return t;
}

// A small bundle with every dtype, both codecs and an empty tensor.
std::vector<std::byte> small_bundle() {
  BundleWriter w(nlohmann::json{{"ecr_bundle", 1}, {"components", {{"toy", {{"type", "test"}}}}}});
  w.add("toy/weight", iota_f32({3, 5}));
  w.add("toy/weight.zstd", iota_f32({4, 16}), Codec::zstd);
  w.add("toy/ids", Tensor::from_vector<std::int64_t>({1, -2, 3}, {3}));
  w.add("toy/ids32", Tensor::from_vector<std::int32_t>({7, 8}, {2}), Codec::zstd);
  w.add("toy/bytes", Tensor::from_vector<std::uint8_t>({1, 2, 3, 4, 5}, {5}));
  w.add("toy/i8", Tensor::from_vector<std::int8_t>({-1, 1}, {1, 2}));
  w.add("toy/half", Tensor::from_vector<Eigen::half>({Eigen::half(1.5f), Eigen::half(-2.f)}, {2}));
  w.add("toy/bf16", Tensor::from_vector<Eigen::bfloat16>({Eigen::bfloat16(0.25f)}, {1}), Codec::zstd);
  w.add("toy/empty", Tensor::empty(DType::f32, {0, 4}));
  w.add("toy/scalar", Tensor::from_vector<float>({42.f}, {}));
  return w.bytes();
}

void check_small_bundle(const Bundle& b) {
  CHECK(b.metadata()["components"]["toy"]["type"] == "test");
  REQUIRE(b.tensors().size() == 10);
  const Tensor w = b.tensor("toy/weight", DType::f32, {3, 5});
  CHECK(w.matrix<float>()(2, 4) == doctest::Approx(0.5f + 14 * 0.25f));
  const Tensor z = b.tensor("toy/weight.zstd", DType::f32, {4, 16});
  CHECK(z.data<float>()[63] == doctest::Approx(0.5f + 63 * 0.25f));
  CHECK(b.tensor("toy/ids").span<std::int64_t>()[1] == -2);
  CHECK(b.tensor("toy/ids32").span<std::int32_t>()[1] == 8);
  CHECK(b.tensor("toy/half").to_f32().span<float>()[1] == -2.f);
  CHECK(b.tensor("toy/bf16").to_f32().span<float>()[0] == 0.25f);
  CHECK(b.tensor("toy/empty").numel() == 0);
  CHECK(b.tensor("toy/scalar").span<float>()[0] == 42.f);
}

}  // namespace

TEST_CASE("bundle: crc32 is zlib's CRC-32 at every length and alignment (whichever library computes it)") {
  const std::string check = "123456789";  // the CRC-32 catalogue's check value
  CHECK(crc32(std::as_bytes(std::span(check.data(), check.size()))) == 0xCBF43926u);
  CHECK(crc32({}) == 0u);
  std::mt19937 rng(7);
  std::vector<unsigned char> data((1 << 20) + 64);
  for (auto& b : data) b = static_cast<unsigned char>(rng());
  for (const std::size_t length : {1u, 3u, 15u, 16u, 63u, 64u, 255u, 4097u, 65536u, 1u << 20}) {
    for (const std::size_t offset : {0u, 1u, 7u, 33u}) {
      CAPTURE(length);
      CAPTURE(offset);
      const auto want = static_cast<std::uint32_t>(::crc32(0L, data.data() + offset, static_cast<uInt>(length)));
      CHECK(crc32(std::as_bytes(std::span(data.data() + offset, length))) == want);
    }
  }
}

TEST_CASE("bundle: write, open from file and memory, read back every dtype and codec") {
  const auto bytes = small_bundle();
  const auto dir = test::temp_dir("bundle_roundtrip");
  const auto path = dir / "small.ecr";
  {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  check_small_bundle(Bundle::open(path));
  check_small_bundle(Bundle::open(path, {.verify_checksums = true, .memory_map = false}));
  check_small_bundle(Bundle::from_bytes(bytes));
  CHECK_NOTHROW(Bundle::open(path).verify());
}

TEST_CASE("bundle: raw tensors are zero-copy views into the map, aligned to 64 bytes") {
  const auto path = test::temp_dir("bundle_mmap") / "m.ecr";
  BundleWriter w(std::string(R"({"x":1})"));
  w.add("a", iota_f32({1000}));
  w.add("b", iota_f32({7}), Codec::zstd);
  w.write(path);
  const Bundle b = Bundle::open(path);
  const Tensor a = b.tensor("a");
  CHECK(a.storage() == StorageKind::mapped);
  CHECK(reinterpret_cast<std::uintptr_t>(a.raw()) % 64 == 0);
  // Two lookups see the same bytes: a view, not a copy.
  CHECK(b.tensor("a").raw() == a.raw());
  CHECK(b.tensor("b").storage() == StorageKind::owned);
  // The view keeps the mapping alive after the bundle is gone.
  Tensor kept = Bundle::open(path).tensor("a");
  CHECK(kept.span<float>()[999] == doctest::Approx(0.5f + 999 * 0.25f));
}

TEST_CASE("bundle: writer rejects duplicate names and non-object metadata") {
  BundleWriter w(std::string("{}"));
  w.add("x", iota_f32({2}));
  CHECK_THROWS_AS(w.add("x", iota_f32({2})), InputError);
  CHECK_THROWS_AS(BundleWriter(std::string("[1,2]")), InputError);
  CHECK_THROWS_AS(BundleWriter(std::string("{\"a\":")), InputError);
}

TEST_CASE("bundle: typed errors name the file and the fault") {
  const auto good = small_bundle();
  auto expect_format = [](std::vector<std::byte> bytes, std::string_view fragment) {
    try {
      Bundle::from_bytes(bytes, "bad.ecr");
      FAIL("expected a FormatError mentioning '" << fragment << "'");
    } catch (const FormatError& e) {
      const std::string msg = e.what();
      CHECK_MESSAGE(msg.find("bad.ecr") != std::string::npos, msg);
      CHECK_MESSAGE(msg.find(fragment) != std::string::npos, msg);
    }
  };
  auto patch_u64 = [](std::vector<std::byte> b, std::size_t at, std::uint64_t v) {
    std::memcpy(b.data() + at, &v, 8);
    return b;
  };
  auto patch_u32 = [](std::vector<std::byte> b, std::size_t at, std::uint32_t v) {
    std::memcpy(b.data() + at, &v, 4);
    return b;
  };
  expect_format({}, "shorter than the 64-byte header");
  auto b = good;
  b[0] = std::byte{'X'};
  expect_format(b, "bad magic");
  expect_format(patch_u32(good, 8, 2), "version 2");
  expect_format(patch_u32(good, 12, 32), "alignment 32");
  expect_format(patch_u64(good, 24, ~0ull), "runs past the end");
  expect_format(patch_u64(good, 40, ~0ull - 10), "runs past the end");
  b = good;
  b[70] ^= std::byte{1};  // inside the metadata
  expect_format(b, "metadata checksum");

  // A corrupted tensor byte is caught at load by default, and by verify() when loading skipped it.
  const Bundle ok = Bundle::from_bytes(good);
  const auto& w = ok.info("toy/weight");
  b = good;
  b[w.offset + 3] ^= std::byte{0x40};
  expect_format(b, "checksum mismatch");
  const Bundle lazy = Bundle::from_bytes(b, "bad.ecr", {.verify_checksums = false, .memory_map = true});
  CHECK_THROWS_AS(lazy.verify(), FormatError);

  CHECK_THROWS_AS(ok.tensor("missing"), FormatError);
  CHECK_THROWS_AS(ok.tensor("toy/weight", DType::f32, {5, 3}), ShapeError);
  CHECK_THROWS_AS(ok.tensor("toy/weight", DType::f16, {3, 5}), ShapeError);
}

TEST_CASE("bundle: opening a missing file or a directory is an IoError") {
  CHECK_THROWS_AS(Bundle::open("/nonexistent/dir/x.ecr"), IoError);
  CHECK_THROWS_AS(Bundle::open(test::temp_dir("bundle_dir")), IoError);
}

// Hostile input: the reader must end every malformed image in a FormatError or load it correctly.
// Run under ASan/UBSan in CI, this is what proves "no crash, no out-of-bounds read".
namespace {
int g_loaded = 0, g_rejected = 0;

void try_load(const std::vector<std::byte>& bytes) {
  try {
    const Bundle b = Bundle::from_bytes(bytes, "fuzz.ecr");
    // A load that succeeds must give tensors whose bytes can all be read.
    for (const auto& info : b.tensors()) {
      const Tensor t = b.tensor(info.name);
      volatile std::uint8_t sink = 0;
      const auto* p = static_cast<const std::uint8_t*>(t.raw());
      for (std::size_t i = 0; i < t.nbytes(); ++i) sink = sink ^ p[i];
    }
    ++g_loaded;
  } catch (const FormatError&) {
    ++g_rejected;
  }
}
}  // namespace

TEST_CASE("bundle: every truncation of a valid bundle is rejected") {
  const auto good = small_bundle();
  g_loaded = g_rejected = 0;
  for (std::size_t n = 0; n < good.size(); ++n) try_load({good.begin(), good.begin() + static_cast<long>(n)});
  CHECK(g_loaded == 0);
  CHECK(g_rejected == static_cast<int>(good.size()));
  MESSAGE("truncations tried: " << good.size());
}

TEST_CASE("bundle: seeded random corruptions end in a FormatError or a correct load") {
  const auto good = small_bundle();
  std::mt19937_64 rng(20241125);
  constexpr int kTrials = 4000;
  g_loaded = g_rejected = 0;
  for (int trial = 0; trial < kTrials; ++trial) {
    auto bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Aim half of the corruptions at the header and table, where the parser's logic lives.
      const std::size_t span = (rng() % 2) ? std::min<std::size_t>(bytes.size(), 1024) : bytes.size();
      const std::size_t at = rng() % span;
      switch (rng() % 3) {
        case 0: bytes[at] ^= std::byte(1u << (rng() % 8)); break;
        case 1: bytes[at] = std::byte(rng() & 0xFF); break;
        default: bytes[at] = std::byte((rng() % 2) ? 0xFF : 0x00); break;
      }
    }
    try_load(bytes);
  }
  CHECK(g_loaded + g_rejected == kTrials);
  // Checksums cover every byte, so nearly every corruption must be caught; a load can only
  // succeed when the flips cancelled out or hit padding.
  CHECK(g_rejected > kTrials * 9 / 10);
  MESSAGE("random corruptions tried: " << kTrials << " (rejected " << g_rejected << ", loaded " << g_loaded << ")");
}
