// The GGUF reader (include/ecr/io/gguf.hpp): files written by the `gguf` package's GGUFWriter read
// back exactly as written (every metadata type, every tensor type ecr computes on; versions 2 and
// 3; another alignment), SmolLM2-135M-Instruct as the `gguf` package's own reader sees it, and
// hand-built hostile files (truncated at every length, every bit flipped, huge counts and
// lengths, deep arrays, bad offsets, dims and alignments, unknown types) each ending in a
// FormatError that names the fault. The fixtures need tools/setup_venv.sh (build/venv with gguf;
// build/models/ for SmolLM2); without them those cases skip with a message.
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/io/bundle.hpp"
#include "ecr/io/gguf.hpp"
#include "gguf_support.hpp"
#include "support.hpp"

using namespace ecr;
using ecr::test::cli_path;
using ecr::test::have_gguf_package;
using ecr::test::run_command;
using ecr::test::run_tool;
using ecr::test::smollm2;
using ecr::test::venv_python;
using ecr::test::source_dir;
using ecr::test::temp_dir;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// --- hand-built files ----------------------------------------------------------------------------

constexpr std::uint32_t kU8 = 0, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9;
constexpr std::uint32_t kTypeF32 = 0, kTypeQ8_0 = 8;

// GGUF bytes, field by field.
struct Bytes {
  std::vector<std::byte> b;
  template <class T>
  Bytes& put(T v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    b.insert(b.end(), p, p + sizeof v);
    return *this;
  }
  Bytes& u32(std::uint32_t v) { return put(v); }
  Bytes& u64(std::uint64_t v) { return put(v); }
  Bytes& str(std::string_view s) {
    u64(s.size());
    for (char c : s) b.push_back(static_cast<std::byte>(c));
    return *this;
  }
  Bytes& header(std::uint32_t version, std::uint64_t n_tensors, std::uint64_t n_kv) {
    return str_raw("GGUF").u32(version).u64(n_tensors).u64(n_kv);
  }
  Bytes& str_raw(std::string_view s) {
    for (char c : s) b.push_back(static_cast<std::byte>(c));
    return *this;
  }
  Bytes& tensor(std::string_view name, std::vector<std::uint64_t> dims, std::uint32_t type, std::uint64_t offset) {
    str(name).u32(static_cast<std::uint32_t>(dims.size()));
    for (auto d : dims) u64(d);
    return u32(type).u64(offset);
  }
  Bytes& pad(std::size_t alignment) {
    while (b.size() % alignment) b.push_back(std::byte{0});
    return *this;
  }
  Bytes& fill(std::size_t n, std::uint8_t seed) {
    for (std::size_t i = 0; i < n; ++i) b.push_back(static_cast<std::byte>(seed + 7 * i));
    return *this;
  }
};

// A small valid file: three keys (a string, an array of u32, an array of arrays of strings) and
// two tensors (F32 [4]; Q8_0 dims [32, 2]), the second ending the file.
Bytes small_file(std::uint32_t version = 3) {
  Bytes f;
  f.header(version, 2, 3);
  f.str("general.architecture").u32(kString).str("llama");
  f.str("test.ids").u32(kArray).u32(kU32).u64(3).u32(1).u32(2).u32(0xFFFFFFFF);
  f.str("test.names").u32(kArray).u32(kArray).u64(2);
  f.u32(kString).u64(2).str("a").str("bc");
  f.u32(kString).u64(1).str("");
  f.tensor("a", {4}, kTypeF32, 0).tensor("b", {32, 2}, kTypeQ8_0, 32);
  f.pad(32).fill(16, 1).pad(32).fill(2 * 34, 100);
  return f;
}

gguf::File parse(const Bytes& f) { return gguf::File::from_bytes(f.b, "hostile.gguf"); }

// The FormatError's message for `f`; fails the test when there is none.
std::string format_error(const Bytes& f) {
  try {
    parse(f);
  } catch (const FormatError& e) {
    return e.what();
  }
  FAIL("no FormatError");
  return {};
}

// Expects a FormatError naming the file and every one of `needles`.
void expect_error(const Bytes& f, std::initializer_list<std::string_view> needles) {
  const std::string message = format_error(f);
  INFO(message);
  CHECK(message.find("hostile.gguf") != std::string::npos);
  for (auto n : needles) CHECK(message.find(n) != std::string::npos);
}

// One metadata key then nothing else: the rest of a test's bytes follow.
Bytes one_key(std::string_view key, std::uint32_t type) {
  Bytes f;
  f.header(3, 0, 1).str(key).u32(type);
  return f;
}

// --- fixtures from the gguf package --------------------------------------------------------------

json read_json(const fs::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::string hex(std::span<const std::byte> bytes) {
  std::string s;
  for (auto b : bytes) s += fmt::format("{:02x}", static_cast<unsigned>(b));
  return s;
}

std::vector<std::byte> file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(c.size());
  std::memcpy(out.data(), c.data(), c.size());
  return out;
}

template <class T>
void check_scalar(const gguf::Value& v, const json& expected) {
  CHECK(v.as<T>() == expected.get<T>());
}

void check_value(const gguf::Value& v, const std::string& type, const json& expected);

// An array written as {"element", "items"}: every element through the typed vector getter and
// again one by one as Values.
void check_array(const gguf::Value& v, const std::string& element, const json& items) {
  REQUIRE(v.type() == gguf::ValueType::array);
  CHECK(gguf::type_name(v.element_type()) == element);
  REQUIRE(v.size() == items.size());
  if (element == "u8") CHECK(v.as<std::vector<std::uint8_t>>() == items.get<std::vector<std::uint8_t>>());
  if (element == "i8") CHECK(v.as<std::vector<std::int8_t>>() == items.get<std::vector<std::int8_t>>());
  if (element == "u16") CHECK(v.as<std::vector<std::uint16_t>>() == items.get<std::vector<std::uint16_t>>());
  if (element == "i16") CHECK(v.as<std::vector<std::int16_t>>() == items.get<std::vector<std::int16_t>>());
  if (element == "u32") CHECK(v.as<std::vector<std::uint32_t>>() == items.get<std::vector<std::uint32_t>>());
  if (element == "i32") CHECK(v.as<std::vector<std::int32_t>>() == items.get<std::vector<std::int32_t>>());
  if (element == "u64") CHECK(v.as<std::vector<std::uint64_t>>() == items.get<std::vector<std::uint64_t>>());
  if (element == "i64") CHECK(v.as<std::vector<std::int64_t>>() == items.get<std::vector<std::int64_t>>());
  if (element == "f32") CHECK(v.as<std::vector<float>>() == items.get<std::vector<float>>());
  if (element == "f64") CHECK(v.as<std::vector<double>>() == items.get<std::vector<double>>());
  if (element == "bool") CHECK(v.as<std::vector<bool>>() == items.get<std::vector<bool>>());
  if (element == "string") {
    CHECK(v.as<std::vector<std::string>>() == items.get<std::vector<std::string>>());
    const auto views = v.as<std::vector<std::string_view>>();
    CHECK(std::vector<std::string>(views.begin(), views.end()) == items.get<std::vector<std::string>>());
  }
  const auto elements = v.as<std::vector<gguf::Value>>();
  REQUIRE(elements.size() == items.size());
  for (std::size_t i = 0; i < elements.size(); ++i) {
    if (element == "array") check_array(elements[i], items[i]["element"], items[i]["items"]);
    else check_value(elements[i], element, items[i]);
  }
}

void check_value(const gguf::Value& v, const std::string& type, const json& expected) {
  CHECK(gguf::type_name(v.type()) == type);
  if (type == "u8") check_scalar<std::uint8_t>(v, expected);
  else if (type == "i8") check_scalar<std::int8_t>(v, expected);
  else if (type == "u16") check_scalar<std::uint16_t>(v, expected);
  else if (type == "i16") check_scalar<std::int16_t>(v, expected);
  else if (type == "u32") check_scalar<std::uint32_t>(v, expected);
  else if (type == "i32") check_scalar<std::int32_t>(v, expected);
  else if (type == "u64") check_scalar<std::uint64_t>(v, expected);
  else if (type == "i64") check_scalar<std::int64_t>(v, expected);
  else if (type == "f32") check_scalar<float>(v, expected);
  else if (type == "f64") check_scalar<double>(v, expected);
  else if (type == "bool") check_scalar<bool>(v, expected);
  else if (type == "string") {
    CHECK(v.as<std::string>() == expected.get<std::string>());
    CHECK(v.as<std::string_view>() == expected.get<std::string>());
  } else FAIL("unexpected type " << type);
}

// The file against the JSON tools.make_gguf_fixture wrote beside it.
void check_fixture(const fs::path& path, const json& expected) {
  const auto f = gguf::File::open(path);
  CHECK(f.version() == expected["version"].get<std::uint32_t>());
  CHECK(f.alignment() == expected["alignment"].get<std::uint32_t>());
  CHECK(f.data_offset() % f.alignment() == 0);
  CHECK(f.file_size() == fs::file_size(path));

  const auto& meta = expected["metadata"];
  REQUIRE(f.metadata().size() == meta.size());
  for (std::size_t i = 0; i < meta.size(); ++i) {
    const std::string key = meta[i]["key"];
    INFO("key " << key);
    CHECK(f.metadata()[i].key == key);
    CHECK(f.contains(key));
    const gguf::Value& v = f.value(key);
    CHECK(v.key() == key);
    if (meta[i]["type"] == "array") check_array(v, meta[i]["element"], meta[i]["items"]);
    else check_value(v, meta[i]["type"], meta[i]["value"]);
  }
  CHECK(f.get<std::string>("general.architecture") == "llama");

  const auto raw = file_bytes(path);
  const auto& tensors = expected["tensors"];
  REQUIRE(f.tensors().size() == tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::string name = tensors[i]["name"];
    INFO("tensor " << name);
    const gguf::TensorInfo& t = f.info(name);
    CHECK(&t == &f.tensors()[i]);
    CHECK(f.has_tensor(name));
    CHECK(t.traits().name == tensors[i]["type"].get<std::string>());
    CHECK(static_cast<std::uint32_t>(t.type) == tensors[i]["type_id"].get<std::uint32_t>());
    CHECK(t.dims == tensors[i]["dims"].get<std::vector<std::int64_t>>());
    CHECK(t.shape() == Shape(t.dims.rbegin(), t.dims.rend()));
    CHECK(t.offset % f.alignment() == 0);
    CHECK(t.offset >= f.data_offset());
    const std::string want = tensors[i]["hex"];
    CHECK(t.nbytes * 2 == want.size());
    REQUIRE(t.offset + t.nbytes <= raw.size());
    CHECK(hex(std::span(raw).subspan(t.offset, t.nbytes)) == want);
    if (t.traits().supported) {
      const gguf::TensorView view = f.tensor(name);
      CHECK(&view.info == &t);
      CHECK(hex(view.bytes) == want);
    } else {
      try {
        f.tensor(name);
        FAIL("tensor() gave a tensor of a type ecr does not compute on");
      } catch (const ConfigError& e) {
        CHECK(std::string(e.what()).find(name) != std::string::npos);
        CHECK(std::string(e.what()).find(tensors[i]["type"].get<std::string>()) != std::string::npos);
      }
    }
  }
}

// GGUFReader's flattened view of a value (tools.gguf_dump): its type chain and its leaves.
void flatten(const gguf::Value& v, std::vector<std::string>& types, json& leaves, bool first) {
  if (first) types.emplace_back(gguf::type_name(v.type()));
  switch (v.type()) {
    case gguf::ValueType::u8: leaves.push_back(v.as<std::uint8_t>()); break;
    case gguf::ValueType::i8: leaves.push_back(v.as<std::int8_t>()); break;
    case gguf::ValueType::u16: leaves.push_back(v.as<std::uint16_t>()); break;
    case gguf::ValueType::i16: leaves.push_back(v.as<std::int16_t>()); break;
    case gguf::ValueType::u32: leaves.push_back(v.as<std::uint32_t>()); break;
    case gguf::ValueType::i32: leaves.push_back(v.as<std::int32_t>()); break;
    case gguf::ValueType::u64: leaves.push_back(v.as<std::uint64_t>()); break;
    case gguf::ValueType::i64: leaves.push_back(v.as<std::int64_t>()); break;
    case gguf::ValueType::f32: leaves.push_back(v.as<float>()); break;
    case gguf::ValueType::f64: leaves.push_back(v.as<double>()); break;
    case gguf::ValueType::boolean: leaves.push_back(v.as<bool>()); break;
    case gguf::ValueType::string: leaves.push_back(v.as<std::string>()); break;
    case gguf::ValueType::array: {
      const auto elements = v.as<std::vector<gguf::Value>>();
      for (std::size_t i = 0; i < elements.size(); ++i) flatten(elements[i], types, leaves, first && i == 0);
      break;
    }
  }
}

// The reader against tools.gguf_dump's JSON of the same file (GGUFReader's view).
void check_against_gguf_reader(const gguf::File& f, const json& dump) {
  CHECK(f.version() == dump["version"].get<std::uint32_t>());
  const auto& meta = dump["metadata"];
  REQUIRE(f.metadata().size() == meta.size());
  for (std::size_t i = 0; i < meta.size(); ++i) {
    INFO("key " << meta[i]["key"].get<std::string>());
    CHECK(f.metadata()[i].key == meta[i]["key"].get<std::string>());
    std::vector<std::string> types;
    json leaves = json::array();
    flatten(f.metadata()[i].value, types, leaves, true);
    CHECK(types == meta[i]["types"].get<std::vector<std::string>>());
    const json& value = meta[i]["value"];
    CHECK(leaves == (value.is_array() ? value : json::array({value})));
  }
  const auto& tensors = dump["tensors"];
  REQUIRE(f.tensors().size() == tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const gguf::TensorInfo& t = f.tensors()[i];
    INFO("tensor " << t.name);
    CHECK(t.name == tensors[i]["name"].get<std::string>());
    CHECK(static_cast<std::uint32_t>(t.type) == tensors[i]["type_id"].get<std::uint32_t>());
    CHECK(t.dims == tensors[i]["dims"].get<std::vector<std::int64_t>>());
    CHECK(t.offset == tensors[i]["offset"].get<std::uint64_t>());
    CHECK(t.nbytes == tensors[i]["nbytes"].get<std::uint64_t>());
    if (t.traits().supported) CHECK(crc32(f.tensor(t.name).bytes) == tensors[i]["crc32"].get<std::uint32_t>());
  }
}

}  // namespace

// --- the gguf package's files --------------------------------------------------------------------

TEST_CASE("gguf: a GGUFWriter file reads back as written: every metadata type, every tensor type, v3 and v2") {
  ECR_REQUIRE_GGUF_PACKAGE();
  const fs::path dir = temp_dir("gguf_fixture");
  struct Case {
    int seed, version, alignment;
  };
  for (const Case c : {Case{1, 3, 0}, Case{2, 2, 64}, Case{3, 3, 256}}) {
    INFO("seed " << c.seed << ", version " << c.version << ", alignment " << c.alignment);
    const fs::path file = dir / fmt::format("f{}.gguf", c.seed), expect = dir / fmt::format("f{}.json", c.seed);
    run_tool(fmt::format("make_gguf_fixture --out '{}' --expect '{}' --seed {} --version {}{}", file.string(),
                         expect.string(), c.seed, c.version, c.alignment ? fmt::format(" --alignment {}", c.alignment) : ""));
    check_fixture(file, read_json(expect));
    // The same file through gguf's own reader.
    run_tool(fmt::format("gguf_dump '{}' --out '{}'", file.string(), (dir / "dump.json").string()));
    check_against_gguf_reader(gguf::File::open(file), read_json(dir / "dump.json"));
  }
}

TEST_CASE("gguf: ecr inspect prints a GGUF file's version, metadata and tensor table") {
  ECR_REQUIRE_GGUF_PACKAGE();
  const fs::path dir = temp_dir("gguf_inspect");
  run_tool(fmt::format("make_gguf_fixture --out '{}' --expect '{}'", (dir / "f.gguf").string(), (dir / "f.json").string()));
  std::string out;
  REQUIRE(run_command(fmt::format("'{}' inspect '{}'", cli_path().string(), (dir / "f.gguf").string()), &out) == 0);
  INFO(out);
  CHECK(out.find("version  3") != std::string::npos);
  CHECK(out.find("test.array.string") != std::string::npos);
  CHECK(out.find("[string] [\"w") != std::string::npos);
  CHECK(out.find("\"... 292 more\"]") != std::string::npos);  // 300 strings, the first 8 shown
  CHECK(out.find("[[\"a\",\"bc\"],[\"déf\"],[\"\",\"g\",\"hi\",\"j\"]]") != std::string::npos);
  CHECK(out.find("t.q4_k") != std::string::npos);
  CHECK(out.find("Q4_K [512, 2]") != std::string::npos);
  CHECK(out.find("I32 [3, 2]") != std::string::npos);

  REQUIRE(run_command(fmt::format("'{}' inspect '{}' --json --metadata", cli_path().string(), (dir / "f.gguf").string()), &out) == 0);
  const json j = json::parse(out);
  CHECK(j["version"] == 3);
  CHECK(j["metadata"]["test.array.string"]["type"] == "[string]");
  CHECK(j["metadata"]["test.array.string"]["value"].size() == 300);  // --metadata: in full
  CHECK(j["tensors"].size() == 14);

  // A truncated file: exit status 1 and the reason.
  auto bytes = file_bytes(dir / "f.gguf");
  {
    std::ofstream cut(dir / "cut.gguf", std::ios::binary);
    cut.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size() - 100));
  }
  CHECK(run_command(fmt::format("'{}' inspect '{}' 2>&1", cli_path().string(), (dir / "cut.gguf").string()), &out) == 1);
  CHECK(out.find("format error: gguf '") != std::string::npos);
  CHECK(out.find("cut.gguf") != std::string::npos);
  CHECK(out.find("run past the end of the file") != std::string::npos);
}

TEST_CASE("gguf: SmolLM2-135M-Instruct Q4_1 is a 30-block llama with a 49152-token vocabulary") {
  const fs::path path = smollm2();
  if (!fs::exists(path)) {
    MESSAGE("skipped: " << path << " is absent (tools/setup_venv.sh downloads it; or set ECR_SMOLLM2_GGUF)");
    return;
  }
  const auto f = gguf::File::open(path);
  CHECK(f.version() == 3);
  CHECK(f.get<std::string>("general.architecture") == "llama");
  CHECK(f.get<std::uint32_t>("llama.block_count") == 30);
  CHECK(f.get<std::uint32_t>("llama.embedding_length") == 576);
  CHECK(f.get<std::uint32_t>("llama.attention.head_count") == 9);
  CHECK(f.get<std::uint32_t>("llama.attention.head_count_kv") == 3);
  CHECK(f.get<std::string>("tokenizer.ggml.model") == "gpt2");
  const auto tokens = f.get<std::vector<std::string_view>>("tokenizer.ggml.tokens");
  CHECK(tokens.size() == 49152);
  CHECK(f.get<std::vector<std::int32_t>>("tokenizer.ggml.token_type").size() == 49152);
  CHECK(f.get<std::uint32_t>("llama.vocab_size") == 49152);
  CHECK(f.get_or<std::uint32_t>("llama.no_such_key", 7) == 7);

  // token_embd (Q8_0, tied to the output: no output.weight), 9 tensors per block (norms F32, the
  // seven matrices Q4_1) and output_norm.
  REQUIRE(f.tensors().size() == 1 + 30 * 9 + 1);
  CHECK(!f.has_tensor("output.weight"));
  const auto& embd = f.info("token_embd.weight");
  CHECK(embd.type == gguf::TensorType::q8_0);
  CHECK(embd.dims == std::vector<std::int64_t>{576, 49152});
  CHECK(embd.shape() == Shape{49152, 576});
  CHECK(f.tensor("token_embd.weight").bytes.size() == 49152 * 576 / 32 * 34);
  CHECK(f.info("output_norm.weight").type == gguf::TensorType::f32);
  for (int block = 0; block < 30; ++block) {
    const auto name = [&](const char* what) { return fmt::format("blk.{}.{}.weight", block, what); };
    CHECK(f.info(name("attn_norm")).type == gguf::TensorType::f32);
    CHECK(f.info(name("ffn_norm")).type == gguf::TensorType::f32);
    for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"})
      CHECK(f.info(name(m)).type == gguf::TensorType::q4_1);
    CHECK(f.info(name("attn_k")).dims == std::vector<std::int64_t>{576, 192});  // 3 kv heads of 64
    CHECK(f.info(name("ffn_down")).dims == std::vector<std::int64_t>{1536, 576});
  }
  // Every value and tensor as the gguf package's reader sees them.
  if (have_gguf_package()) {
    const fs::path dir = temp_dir("gguf_smollm2");
    run_tool(fmt::format("gguf_dump '{}' --out '{}'", path.string(), (dir / "dump.json").string()));
    check_against_gguf_reader(f, read_json(dir / "dump.json"));
  } else {
    MESSAGE("not compared with the gguf package's reader: no venv at " << venv_python());
  }
}

// --- hand-built files ----------------------------------------------------------------------------

TEST_CASE("gguf: a hand-built file reads back (values, getters, tensors), as version 2 and 3") {
  for (std::uint32_t version : {2u, 3u}) {
    const auto f = parse(small_file(version));
    CHECK(f.version() == version);
    CHECK(f.alignment() == 32);
    CHECK(f.get<std::string_view>("general.architecture") == "llama");
    CHECK(f.get<std::vector<std::uint32_t>>("test.ids") == std::vector<std::uint32_t>{1, 2, 0xFFFFFFFF});
    const auto names = f.get<std::vector<gguf::Value>>("test.names");
    REQUIRE(names.size() == 2);
    CHECK(names[0].as<std::vector<std::string>>() == std::vector<std::string>{"a", "bc"});
    CHECK(names[1].as<std::vector<std::string>>() == std::vector<std::string>{""});
    const auto first = f.value("test.ids").elements(2);
    REQUIRE(first.size() == 2);
    CHECK(first[1].as<std::uint32_t>() == 2);
    CHECK(f.value("test.ids").elements(9).size() == 3);
    REQUIRE(f.tensors().size() == 2);
    const auto a = f.tensor("a");
    CHECK(a.info.type == gguf::TensorType::f32);
    CHECK(a.info.offset == f.data_offset());
    CHECK(a.bytes.size() == 16);
    CHECK(a.bytes[0] == std::byte{1});
    CHECK(a.bytes[15] == std::byte{1 + 7 * 15});
    const auto b = f.tensor("b");
    CHECK(b.info.offset == f.data_offset() + 32);
    CHECK(b.bytes.size() == 68);
    CHECK(b.info.numel == 64);
    CHECK(b.bytes[67] == static_cast<std::byte>((100 + 7 * 67) % 256));
    CHECK(b.bytes.data() + b.bytes.size() == a.bytes.data() - f.data_offset() + f.file_size());
  }
}

TEST_CASE("gguf: a getter of the wrong type or a missing key names the key and both types") {
  const auto f = parse(small_file());
  const auto message = [&](auto get) -> std::string {
    try {
      get();
    } catch (const FormatError& e) {
      return e.what();
    }
    return "no FormatError";
  };
  CHECK(message([&] { f.get<std::uint32_t>("general.architecture"); }) ==
        "format error: gguf 'hostile.gguf': key 'general.architecture' is string, expected u32");
  CHECK(message([&] { f.get<std::vector<std::int32_t>>("test.ids"); }) ==
        "format error: gguf 'hostile.gguf': key 'test.ids' is an array of u32, expected an array of i32");
  CHECK(message([&] { f.get<std::string>("test.ids"); }) ==
        "format error: gguf 'hostile.gguf': key 'test.ids' is an array of u32, expected string");
  CHECK(message([&] { f.get<std::vector<std::string>>("test.names"); }) ==
        "format error: gguf 'hostile.gguf': key 'test.names' is an array of array, expected an array of string");
  CHECK(message([&] { f.value("general.architecture").elements(); }) ==
        "format error: gguf 'hostile.gguf': key 'general.architecture' is string, expected array");
  CHECK(message([&] { f.get<bool>("llama.block_count"); }) == "format error: gguf 'hostile.gguf': no key 'llama.block_count'");
  CHECK(message([&] { f.info("c"); }) == "format error: gguf 'hostile.gguf': no tensor 'c'");
  CHECK(message([&] { f.tensor("c"); }) == "format error: gguf 'hostile.gguf': no tensor 'c'");
}

TEST_CASE("gguf: a file cut at every length is a FormatError, and so is every single bit flipped or a valid file") {
  const Bytes full = small_file();
  CHECK_NOTHROW(parse(full));
  for (std::size_t n = 0; n < full.b.size(); ++n) {
    Bytes cut;
    cut.b.assign(full.b.begin(), full.b.begin() + static_cast<std::ptrdiff_t>(n));
    INFO("first " << n << " bytes");
    CHECK(!format_error(cut).empty());
  }
  // A flipped bit may still make a valid file (a byte of tensor data, a letter of a name); then
  // every tensor's bytes must lie inside the image.
  int refused = 0;
  for (std::size_t bit = 0; bit < full.b.size() * 8; ++bit) {
    Bytes flipped = full;
    flipped.b[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
    try {
      const auto f = parse(flipped);
      for (const auto& t : f.tensors()) CHECK(t.offset + t.nbytes <= f.file_size());
    } catch (const FormatError&) {
      ++refused;
    }
  }
  CHECK(refused > 0);
}

TEST_CASE("gguf: the header: magic, version 1, other versions, big-endian, huge counts") {
  Bytes magic;
  magic.str_raw("GGUG").u32(3).u64(0).u64(0);
  expect_error(magic, {"bad magic", "not a GGUF file"});
  expect_error(Bytes(small_file(1)), {"version 1 is not supported", "2 and 3"});
  expect_error(Bytes(small_file(4)), {"version 4 is not supported"});
  Bytes big;
  big.str_raw("GGUF").u32(0x03000000).u64(0).u64(0);
  expect_error(big, {"big-endian"});
  Bytes kv;
  kv.header(3, 0, std::uint64_t{1} << 63);
  expect_error(kv, {"metadata count 9223372036854775808"});
  Bytes tensors;
  tensors.header(3, std::uint64_t{1} << 63, 0);
  expect_error(tensors, {"tensor count 9223372036854775808"});
  Bytes both;
  both.header(3, ~std::uint64_t{0}, ~std::uint64_t{0});
  expect_error(both, {"count"});
  // No metadata and no tensors: a valid, empty file.
  Bytes empty;
  empty.header(3, 0, 0);
  const auto f = parse(empty);
  CHECK(f.metadata().empty());
  CHECK(f.tensors().empty());
}

TEST_CASE("gguf: metadata: lengths past the end, huge arrays, deep nesting, bad types, duplicates") {
  Bytes key;
  key.header(3, 0, 1).u64(~std::uint64_t{0}).str_raw("k").fill(16, 0);
  expect_error(key, {"metadata entry 0", "key needs 18446744073709551615 bytes"});
  Bytes empty_key;
  empty_key.header(3, 0, 1).str("").u32(kU8).put<std::uint8_t>(1).fill(16, 0);
  expect_error(empty_key, {"key of 0 bytes"});
  expect_error(one_key("k", kString).u64(std::uint64_t{1} << 40).str_raw("abc"), {"key 'k'", "string needs 1099511627776 bytes"});
  expect_error(one_key("k", 13).u32(0), {"key 'k'", "value type is 13"});
  expect_error(one_key("k", kBool).put<std::uint8_t>(2), {"key 'k'", "bool is 2"});
  expect_error(one_key("k", kF32).put<std::uint16_t>(0), {"key 'k'", "f32 needs 4 bytes"});
  // Arrays of 2^60 elements of each kind of element, with a few bytes after them.
  for (std::uint32_t element : {kU8, kU32, kString, kArray}) {
    INFO("element type " << element);
    expect_error(one_key("big", kArray).u32(element).u64(std::uint64_t{1} << 60).u64(0).u64(0), {"key 'big'", "an array of 1152921504606846976"});
  }
  expect_error(one_key("k", kArray).u32(99).u64(0), {"key 'k'", "array element type is 99"});
  expect_error(one_key("k", kArray).u32(kBool).u64(3).put<std::uint8_t>(0).put<std::uint8_t>(1).put<std::uint8_t>(7),
               {"key 'k'", "bool element 2 is 7"});
  // An array of strings whose last length runs past the end.
  expect_error(one_key("k", kArray).u32(kString).u64(2).str("ok").u64(100).str_raw("short"), {"key 'k'", "string needs 100 bytes"});

  // Arrays of arrays: kMaxArrayDepth levels read, one more is refused, a million is refused at once.
  const auto nested = [](int depth) {
    Bytes f = one_key("deep", kArray);
    for (int i = 1; i < depth; ++i) f.u32(kArray).u64(1);
    f.u32(kI32).u64(1).put<std::int32_t>(-5);
    return f;
  };
  const gguf::File deep = parse(nested(gguf::kMaxArrayDepth));  // its Values view its bytes: keep it
  auto v = deep.value("deep");
  for (int i = 1; i < gguf::kMaxArrayDepth; ++i) v = v.as<std::vector<gguf::Value>>().at(0);
  CHECK(v.as<std::vector<std::int32_t>>() == std::vector<std::int32_t>{-5});
  expect_error(nested(gguf::kMaxArrayDepth + 1), {"key 'deep'", "nested more than 8 deep"});
  expect_error(nested(1000000), {"key 'deep'", "nested more than 8 deep"});

  Bytes dup;
  dup.header(3, 0, 2).str("k").u32(kU8).put<std::uint8_t>(1).str("k").u32(kU32).u32(2);
  expect_error(dup, {"key 'k' appears twice"});
}

TEST_CASE("gguf: general.alignment must be a u32 power of two, and tensor offsets multiples of it") {
  const auto with_alignment = [](std::uint32_t type, std::uint32_t value) {
    Bytes f;
    f.header(3, 1, 1).str("general.alignment").u32(type).u32(value);
    f.tensor("a", {4}, kTypeF32, 0).pad(64).fill(16, 0);
    return f;
  };
  expect_error(with_alignment(kU32, 48), {"general.alignment is 48", "power of two"});
  expect_error(with_alignment(kU32, 0), {"general.alignment is 0"});
  expect_error(with_alignment(kI32, 64), {"'general.alignment' is i32, expected u32"});
  const auto f = parse(with_alignment(kU32, 64));
  CHECK(f.alignment() == 64);
  CHECK(f.data_offset() % 64 == 0);
  // A large alignment puts the data start past the end of this small file.
  expect_error(with_alignment(kU32, 1u << 31), {"tensor 'a'", "run past the end of the file"});

  Bytes misaligned;
  misaligned.header(3, 1, 0).tensor("a", {4}, kTypeF32, 16).pad(32).fill(64, 0);
  expect_error(misaligned, {"tensor 'a'", "offset 16 is not a multiple of the alignment 32"});
}

TEST_CASE("gguf: tensor infos: offsets out of range or overlapping, bad dims, unknown types, duplicates") {
  const auto one_tensor = [](std::vector<std::uint64_t> dims, std::uint32_t type, std::uint64_t offset, std::size_t data) {
    Bytes f;
    f.header(3, 1, 0).tensor("w", std::move(dims), type, offset).pad(32).fill(data, 3);
    return f;
  };
  CHECK_NOTHROW(parse(one_tensor({8}, kTypeF32, 0, 32)));
  expect_error(one_tensor({8}, kTypeF32, 0, 31), {"tensor 'w'", "32 bytes at data offset 0 run past the end"});
  expect_error(one_tensor({8}, kTypeF32, 32, 32), {"tensor 'w'", "at data offset 32 run past the end"});
  expect_error(one_tensor({8}, kTypeF32, ~std::uint64_t{31}, 32), {"tensor 'w'", "run past the end"});
  expect_error(one_tensor({std::uint64_t{1} << 32, std::uint64_t{1} << 32}, kTypeF32, 0, 32),
               {"tensor 'w'", "more than 2^63 elements"});
  expect_error(one_tensor({std::uint64_t{1} << 63}, kTypeF32, 0, 32), {"tensor 'w'", "dimension 0 is 9223372036854775808"});
  // 2^62 F32 elements count fine but take 2^64 bytes.
  expect_error(one_tensor({std::uint64_t{1} << 31, std::uint64_t{1} << 31}, kTypeF32, 0, 32), {"tensor 'w'", "more than 2^64 bytes"});
  expect_error(one_tensor({8, 1, 1, 1, 1}, kTypeF32, 0, 32), {"tensor 'w'", "n_dims is 5"});
  expect_error(one_tensor({16}, kTypeQ8_0, 0, 34), {"tensor 'w'", "a row of 16 elements is not whole Q8_0 blocks of 32"});
  expect_error(one_tensor({8}, 99, 0, 32), {"tensor 'w'", "ggml type id 99"});
  expect_error(one_tensor({8}, 4, 0, 32), {"tensor 'w'", "ggml type id 4"});  // Q4_2, long gone from ggml

  Bytes overlap;
  overlap.header(3, 2, 0).tensor("a", {16}, kTypeF32, 0).tensor("b", {8}, kTypeF32, 32).pad(32).fill(96, 0);
  expect_error(overlap, {"tensor 'b'", "overlaps tensor 'a'"});
  Bytes same;
  same.header(3, 2, 0).tensor("a", {8}, kTypeF32, 0).tensor("b", {8}, kTypeF32, 0).pad(32).fill(32, 0);
  expect_error(same, {"overlaps"});
  Bytes dup;
  dup.header(3, 2, 0).tensor("a", {8}, kTypeF32, 0).tensor("a", {8}, kTypeF32, 32).pad(32).fill(64, 0);
  expect_error(dup, {"tensor 'a'", "the name appears twice"});
  Bytes long_name;
  long_name.header(3, 1, 0).tensor(std::string(64, 'n'), {8}, kTypeF32, 0).pad(32).fill(32, 0);
  expect_error(long_name, {"tensor info 0", "name of 64 bytes"});

  // A type ggml defines that ecr does not compute on (I32): listed, tensor() refuses it by name.
  const auto f = parse(one_tensor({8}, 26, 0, 32));
  CHECK(f.info("w").traits().name == "I32");
  CHECK(f.info("w").nbytes == 32);
  CHECK_THROWS_WITH_AS(f.tensor("w"), doctest::Contains("tensor 'w' has type I32 (ggml type id 26)"), ConfigError);
}

TEST_CASE("gguf: the type table sizes each ggml type as the format defines it") {
  struct Row {
    gguf::TensorType type;
    std::string_view name;
    std::uint32_t block, bytes;
  };
  // Block layouts from ggml-common.h: scales (f16 d, dmin), quants, high bits, sub-block scales.
  for (const Row& r : {Row{gguf::TensorType::f32, "F32", 1, 4}, Row{gguf::TensorType::f16, "F16", 1, 2},
                       Row{gguf::TensorType::bf16, "BF16", 1, 2}, Row{gguf::TensorType::q8_0, "Q8_0", 32, 34},
                       Row{gguf::TensorType::q4_0, "Q4_0", 32, 18}, Row{gguf::TensorType::q4_1, "Q4_1", 32, 20},
                       Row{gguf::TensorType::q5_0, "Q5_0", 32, 22}, Row{gguf::TensorType::q5_1, "Q5_1", 32, 24},
                       Row{gguf::TensorType::q2_k, "Q2_K", 256, 84}, Row{gguf::TensorType::q3_k, "Q3_K", 256, 110},
                       Row{gguf::TensorType::q4_k, "Q4_K", 256, 144}, Row{gguf::TensorType::q5_k, "Q5_K", 256, 176},
                       Row{gguf::TensorType::q6_k, "Q6_K", 256, 210}}) {
    const auto* t = gguf::type_traits(static_cast<std::uint32_t>(r.type));
    REQUIRE(t);
    CHECK(t->name == r.name);
    CHECK(t->block_size == r.block);
    CHECK(t->block_bytes == r.bytes);
    CHECK(t->supported);
    CHECK(gguf::type_name(r.type) == r.name);
  }
  CHECK(gguf::type_traits(4) == nullptr);
  CHECK(gguf::type_traits(1000) == nullptr);
  CHECK(gguf::type_name(static_cast<gguf::TensorType>(1000)) == "type 1000");
  CHECK(!gguf::type_traits(16)->supported);  // IQ2_XXS
}

TEST_CASE("gguf: a mapped file reads as its bytes do") {
  const fs::path dir = temp_dir("gguf_mapped");
  const Bytes bytes = small_file();
  {
    std::ofstream out(dir / "small.gguf", std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.b.data()), static_cast<std::streamsize>(bytes.b.size()));
  }
  const auto f = gguf::File::open(dir / "small.gguf");
  CHECK(f.label() == (dir / "small.gguf").string());
  CHECK(hex(f.tensor("b").bytes) == hex(parse(bytes).tensor("b").bytes));
  CHECK(gguf::has_magic(bytes.b));
  CHECK(!gguf::has_magic(std::span(bytes.b).first(3)));
  CHECK_THROWS_AS(gguf::File::open(dir / "absent.gguf"), IoError);
}
