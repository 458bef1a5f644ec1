// The Python tools against the C++ library: tools/ecr_bundle.py writes the same bytes as
// ecr::BundleWriter and each reads the other's files; checkpoints from make_random_checkpoints.py
// convert (convert.py) into bundles whose tensors are the checkpoint's; .bin and .safetensors
// give the same bundle; bad checkpoints are refused with a message naming the tensor; and the
// torch reference's decoding obeys its own rules.
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "ecr/io/bundle.hpp"
#include "support.hpp"

using namespace ecr;
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& path, std::string_view text) {
  std::ofstream(path, std::ios::binary).write(text.data(), static_cast<std::streamsize>(text.size()));
}

// "" when equal, else where two files' bytes first differ.
std::string difference(const std::string& a, const std::string& b) {
  if (a == b) return "";
  std::size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return fmt::format("sizes {} and {}, first difference at byte {}", a.size(), b.size(), i);
}

// Runs `python3 SCRIPT ARGS` (a script the test wrote); returns the exit code, output in `out`.
int run_script(const fs::path& script, const std::string& args, std::string* out) {
  return test::run_command(fmt::format("{} {} {}", ECR_PYTHON, script.string(), args), out);
}

// One tensor of the byte-identity test. Its bytes come from a formula both languages compute.
struct Spec {
  std::string name;
  DType dtype;
  Shape shape;
  Codec codec;
  int level;
  bool ramp;  // compressible bytes (j / 256) instead of hashed ones
};

std::uint8_t spec_byte(std::size_t k, std::size_t j, bool ramp) {
  return ramp ? static_cast<std::uint8_t>(j >> 8) : static_cast<std::uint8_t>((j * 131) ^ (k * 29) ^ (j >> 5));
}

std::vector<Spec> byte_identity_specs() {
  std::vector<Spec> specs;
  for (DType d : {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64, DType::i8, DType::u8})
    for (Codec c : {Codec::raw, Codec::zstd})
      specs.push_back({fmt::format("{}/{}", dtype_name(d), codec_name(c)), d, {3, 5}, c, 3, false});
  specs.push_back({"empty/raw", DType::f32, {0, 5}, Codec::raw, 3, false});
  specs.push_back({"empty/zstd", DType::i64, {4, 0}, Codec::zstd, 3, false});
  specs.push_back({"scalar", DType::f32, {}, Codec::raw, 3, false});
  specs.push_back({"ramp/zstd1", DType::f32, {256, 64}, Codec::zstd, 1, true});
  specs.push_back({"ramp/zstd9", DType::u8, {4, 1000}, Codec::zstd, 9, true});
  specs.push_back({"ramp/raw", DType::f16, {7, 3, 1}, Codec::raw, 3, true});
  specs.push_back({"näme ✓/µ", DType::u8, {7}, Codec::raw, 3, false});
  return specs;
}

Tensor spec_tensor(std::size_t k, const Spec& s) {
  Tensor t = Tensor::empty(s.dtype, s.shape, s.name);
  auto* bytes = static_cast<std::uint8_t*>(t.raw());
  for (std::size_t j = 0; j < t.nbytes(); ++j) bytes[j] = spec_byte(k, j, s.ramp);
  return t;
}

// The Python half of the byte-identity test: builds the same tensors from specs.json (torch
// for bf16, numpy for the rest), writes python_text.ecr (metadata text verbatim) and
// python_dict.ecr (metadata as a dict), then reads cpp_text.ecr and checks every tensor.
constexpr std::string_view kPythonWriter = R"PY(
import json, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
from tools.ecr_bundle import BundleWriter, read_bundle
d = sys.argv[2]
specs = json.load(open(f"{d}/specs.json", encoding="utf-8"))
meta = open(f"{d}/metadata.json", encoding="utf-8", newline="").read()
numpy_of = {"f32": np.float32, "f16": np.float16, "bf16": np.int16, "i32": np.int32, "i64": np.int64,
            "i8": np.int8, "u8": np.uint8}

def tensor(k, s):
    n = int(np.prod(s["shape"], dtype=np.int64)) * np.dtype(numpy_of[s["dtype"]]).itemsize
    j = np.arange(n, dtype=np.int64)
    b = ((j >> 8) if s["ramp"] else ((j * 131) ^ (k * 29) ^ (j >> 5))) & 0xFF
    a = b.astype(np.uint8).view(numpy_of[s["dtype"]]).reshape(s["shape"])
    return torch.from_numpy(a.copy()).view(torch.bfloat16) if s["dtype"] == "bf16" else a

for out, metadata in (("python_text.ecr", meta), ("python_dict.ecr", json.loads(meta))):
    w = BundleWriter(metadata)
    for k, s in enumerate(specs):
        w.add(s["name"], tensor(k, s), codec=s["codec"], level=s["level"])
    w.write(f"{d}/{out}")
    assert open(f"{d}/{out}", "rb").read() == w.to_bytes()

got_meta, got = read_bundle(f"{d}/cpp_text.ecr")
assert got_meta == json.loads(meta), got_meta
assert list(got) == [s["name"] for s in specs], list(got)
for k, s in enumerate(specs):
    want = tensor(k, s)
    want = want.view(torch.int16).numpy().view(np.uint16) if s["dtype"] == "bf16" else want
    assert got[s["name"]].dtype == want.dtype and got[s["name"]].shape == want.shape, s["name"]
    assert got[s["name"]].tobytes() == want.tobytes(), s["name"]
print("python side ok")
)PY";

}  // namespace

TEST_CASE("tools: ecr_bundle.py and BundleWriter write identical bytes and read each other's files") {
  ECR_REQUIRE_TORCH();
  const fs::path dir = test::temp_dir("tools_byte_identity");
  // Not in sorted order, with non-ASCII text, a control character, floats and nesting: the text
  // writers must keep it verbatim, the dict writers must agree on the canonical form.
  const std::string metadata =
      R"({"zeta":1,"alpha":"é ✓ \u0001 \"q\" /","nested":{"b":[1,2.5,-0.125,null,true,false],"a":{}},)"
      R"("eps":1e-05,"big":1234567890123,"neg":-7,"f":0.1})";
  write_file(dir / "metadata.json", metadata);
  const auto specs = byte_identity_specs();
  nlohmann::json spec_json = nlohmann::json::array();
  BundleWriter text_writer(metadata), dict_writer(nlohmann::json::parse(metadata));
  for (std::size_t k = 0; k < specs.size(); ++k) {
    const Spec& s = specs[k];
    spec_json.push_back({{"name", s.name}, {"dtype", dtype_name(s.dtype)}, {"shape", s.shape},
                         {"codec", codec_name(s.codec)}, {"level", s.level}, {"ramp", s.ramp}});
    text_writer.add(s.name, spec_tensor(k, s), s.codec, s.level);
    dict_writer.add(s.name, spec_tensor(k, s), s.codec, s.level);
  }
  write_file(dir / "specs.json", spec_json.dump());
  text_writer.write(dir / "cpp_text.ecr");
  dict_writer.write(dir / "cpp_dict.ecr");
  write_file(dir / "writer.py", kPythonWriter);

  std::string out;
  const int rc = run_script(dir / "writer.py", fmt::format("{} {}", test::source_dir().string(), dir.string()), &out);
  REQUIRE_MESSAGE(rc == 0, out);

  const std::string cpp_text = read_file(dir / "cpp_text.ecr"), py_text = read_file(dir / "python_text.ecr");
  CHECK(difference(cpp_text, py_text) == "");
  const std::string cpp_dict = read_file(dir / "cpp_dict.ecr"), py_dict = read_file(dir / "python_dict.ecr");
  CHECK_MESSAGE(difference(cpp_dict, py_dict) == "", "C++ metadata: " << nlohmann::json::parse(metadata).dump());
  CHECK(cpp_text != cpp_dict);  // the dict form is re-serialised (sorted), not the text as given

  // The C++ reader on the Python file: every tensor's bytes, shape and dtype.
  const Bundle b = Bundle::open(dir / "python_text.ecr");
  CHECK(b.metadata() == nlohmann::json::parse(metadata));
  REQUIRE(b.tensors().size() == specs.size());
  for (std::size_t k = 0; k < specs.size(); ++k) {
    CAPTURE(specs[k].name);
    const Tensor want = spec_tensor(k, specs[k]);
    const TensorInfo& info = b.tensors()[k];
    CHECK(info.name == specs[k].name);
    CHECK(info.codec == specs[k].codec);
    const Tensor got = b.tensor(specs[k].name, specs[k].dtype, specs[k].shape);
    REQUIRE(got.nbytes() == want.nbytes());
    CHECK(std::memcmp(got.raw(), want.raw(), want.nbytes()) == 0);
  }
  CHECK(b.info("ramp/zstd1").stored_size < b.info("ramp/zstd1").raw_size() / 4);  // it really compressed
}

// A zero-size tensor occupies no bytes, so the next tensor starts at its offset (docs/format.md,
// data placement): both readers must take that for adjacency, not overlap, however they sort.
constexpr std::string_view kPythonReadEmpties = R"PY(
import sys
sys.path.insert(0, sys.argv[1])
from tools.ecr_bundle import read_bundle
_, t = read_bundle(sys.argv[2])
assert len(t) == 80 and all(t[f"e{i}"].shape == (0, 2) and t[f"x{i}"].tolist() == [i, i, i] for i in range(40))
)PY";

TEST_CASE("tools: zero-size tensors share the next tensor's offset and both readers accept that") {
  ECR_REQUIRE_TORCH();
  const fs::path dir = test::temp_dir("tools_empties");
  BundleWriter w(std::string("{}"));
  for (int i = 0; i < 40; ++i) {
    w.add(fmt::format("e{}", i), Tensor::empty(DType::f32, {0, 2}));
    w.add(fmt::format("x{}", i), Tensor::from_vector<float>({float(i), float(i), float(i)}, {3}));
  }
  w.write(dir / "empties.ecr");
  const Bundle b = Bundle::open(dir / "empties.ecr");
  CHECK(b.info("e5").offset == b.info("x5").offset);
  CHECK(b.tensor("x39").span<float>()[2] == 39.f);
  write_file(dir / "read.py", kPythonReadEmpties);
  std::string out;
  CHECK_MESSAGE(run_script(dir / "read.py", fmt::format("{} {}", test::source_dir().string(), (dir / "empties.ecr").string()),
                           &out) == 0, out);
}

// `python3 -m tools.ecr_bundle replace`: how a retrained component goes into a shipped bundle.
TEST_CASE("tools: ecr_bundle replace swaps one component's tensors and metadata, and keeps the rest byte for byte") {
  ECR_REQUIRE_TORCH();
  const fs::path dir = test::temp_dir("tools_replace");
  const auto filled = [](const Shape& shape, float base) {
    Tensor t = Tensor::empty(DType::f32, shape);
    auto v = t.span<float>();
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = base + float(i);
    return t;
  };
  BundleWriter base(nlohmann::json{{"components", {{"a", {{"type", "x"}, {"v", 1}}}, {"b", {{"type", "y"}}}}},
                                   {"other", 5}});
  base.add("a/w", filled({4, 3}, 0.f), Codec::zstd, 3);
  base.add("a/old_only", filled({2}, 50.f));
  base.add("b/w", filled({3, 3}, 100.f), Codec::raw);
  base.add("kg/t", filled({5}, 200.f), Codec::zstd, 3);
  base.write(dir / "base.ecr");
  BundleWriter donor(nlohmann::json{{"components", {{"a", {{"type", "x"}, {"v", 2}}}}}});
  donor.add("a/w", filled({4, 3}, 1000.f), Codec::raw);
  donor.add("a/new_only", filled({6}, 2000.f), Codec::zstd, 3);
  donor.add("kg/t", filled({5}, -1.f));  // not the component's: must not be taken
  donor.write(dir / "donor.ecr");

  const auto replace = [&](const std::string& component, std::string* out) {
    return test::run_command(test::python_module_command(fmt::format(
                                 "ecr_bundle replace {} --component {} --from {} --out {}", (dir / "base.ecr").string(),
                                 component, (dir / "donor.ecr").string(), (dir / "out.ecr").string())),
                             out);
  };
  std::string out;
  REQUIRE_MESSAGE(replace("a", &out) == 0, out);
  const Bundle b = Bundle::open(dir / "out.ecr");
  b.verify();
  CHECK(b.metadata()["components"]["a"]["v"] == 2);
  CHECK(b.metadata()["components"]["b"]["type"] == "y");
  CHECK(b.metadata()["other"] == 5);
  CHECK(b.contains("a/new_only"));
  CHECK_FALSE(b.contains("a/old_only"));
  CHECK(b.tensor("a/w").span<float>()[11] == 1011.f);
  CHECK(b.info("a/w").codec == Codec::raw);  // the donor's codec
  CHECK(b.tensor("b/w").span<float>()[8] == 108.f);
  CHECK(b.info("b/w").codec == Codec::raw);
  CHECK(b.tensor("kg/t").span<float>()[4] == 204.f);
  CHECK(b.info("kg/t").codec == Codec::zstd);

  REQUIRE(replace("missing", &out) != 0);
  CHECK_MESSAGE(out.find("no component 'missing'") != std::string::npos, out);
}

// --- converter ------------------------------------------------------------------------------

namespace {

std::string gpt2_vocab_dir() { return (test::shared_data() / "gpt2").string(); }

// Tiny but real-layout checkpoints: the vocabulary is GPT-2's (50,259 rows), the rest is small.
int make_gpt2(const fs::path& out, const std::string& extra = "") {
  return test::run_python(fmt::format("make_random_checkpoints gpt2 --out {} --layers 2 --heads 2 --hidden 16 "
                                      "--positions 32 --vocab-dir {} --seed 7 {}",
                                      out.string(), gpt2_vocab_dir(), extra));
}

int make_roberta(const fs::path& out, const std::string& extra = "") {
  return test::run_python(fmt::format("make_random_checkpoints roberta --out {} --layers 2 --heads 2 --hidden 16 "
                                      "--intermediate 24 --positions 30 --vocab-dir {} --seed 3 {}",
                                      out.string(), gpt2_vocab_dir(), extra));
}

// Dumps chosen tensors of a pytorch_model.bin as f32 .npy files named after the keys.
constexpr std::string_view kDumpTensors = R"PY(
import sys, numpy as np, torch
sd = torch.load(sys.argv[1], map_location="cpu")
for key in sys.argv[3:]:
    np.save(f"{sys.argv[2]}/{key}.npy", sd[key].float().numpy())
)PY";

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(read_file(path)); }

}  // namespace

TEST_CASE("tools: a converted random GPT-2 checkpoint opens in C++ with the checkpoint's values") {
  ECR_REQUIRE_TORCH();
  ECR_REQUIRE_SHARED_DATA();
  const fs::path dir = test::temp_dir("tools_convert_gpt2");
  REQUIRE(make_gpt2(dir / "ckpt") == 0);
  REQUIRE(test::run_python(fmt::format("convert --out {} --gpt2 backbone={}", (dir / "f32.ecr").string(),
                                       (dir / "ckpt").string())) == 0);
  REQUIRE(test::run_python(fmt::format("convert --out {} --gpt2 backbone={} --dtype f16 --codec zstd",
                                       (dir / "f16.ecr").string(), (dir / "ckpt").string())) == 0);
  const std::vector<std::string> keys = {"transformer.wte.weight", "transformer.wpe.weight",
                                         "transformer.h.1.attn.c_attn.weight", "transformer.h.0.mlp.c_proj.bias",
                                         "transformer.ln_f.weight"};
  write_file(dir / "dump.py", kDumpTensors);
  std::string out, args = fmt::format("{} {}", (dir / "ckpt" / "pytorch_model.bin").string(), dir.string());
  for (const auto& k : keys) args += " " + k;
  REQUIRE_MESSAGE(run_script(dir / "dump.py", args, &out) == 0, out);

  const Bundle b = Bundle::open(dir / "f32.ecr");
  const auto& meta = b.metadata();
  CHECK(meta["ecr_bundle"] == 1);
  const auto& c = meta["components"]["backbone"];
  CHECK(c["type"] == "gpt2");
  CHECK(c["tied_lm_head"] == true);
  CHECK(c["conv1d_layout"] == "out_in");
  CHECK(c["config"] == read_json(dir / "ckpt" / "config.json"));
  REQUIRE(c["tokenizer"] == "gpt2");
  const auto& tok = meta["tokenizers"]["gpt2"];
  CHECK(tok["kind"] == "byte_bpe");
  CHECK(tok["vocab"].size() == 50257);
  CHECK(tok["vocab"]["<|endoftext|>"] == 50256);
  CHECK(tok["added_tokens"] == nlohmann::json{{"<pad>", 50257}, {"<movie>", 50258}});
  CHECK(tok["merges"] == read_file(fs::path(gpt2_vocab_dir()) / "vocab.bpe"));
  // wte, wpe, 12 per layer, ln_f; no buffers, no tied head.
  CHECK(b.tensors().size() == 2 + 2 * 12 + 2);
  for (const auto& info : b.tensors()) {
    CAPTURE(info.name);
    CHECK(info.name.rfind("backbone/transformer.", 0) == 0);
    CHECK(info.name.find(".attn.bias") == std::string::npos);
    CHECK(info.name.find("masked_bias") == std::string::npos);
  }
  CHECK(b.tensor("backbone/transformer.h.1.mlp.c_fc.weight").shape() == Shape{64, 16});  // Conv1D (16, 64), transposed

  const Bundle half = Bundle::open(dir / "f16.ecr");
  CHECK(half.info("backbone/transformer.wte.weight").codec == Codec::zstd);
  for (const auto& key : keys) {
    CAPTURE(key);
    Tensor want = test::read_npy(dir / (key + ".npy"));
    if (key.ends_with("c_attn.weight")) {  // the bundle keeps the Conv1D (in, out) as (out, in)
      Tensor t = Tensor::empty(DType::f32, {want.dim(1), want.dim(0)});
      t.matrix<float>() = want.matrix<float>().transpose();
      want = t;
    }
    const Tensor got = b.tensor("backbone/" + key, DType::f32, want.shape());
    CHECK(test::max_abs_diff(got, want) == 0.0f);
    const Tensor got16 = half.tensor("backbone/" + key, DType::f16, want.shape());
    CHECK(test::max_abs_diff(got16.to_f32(), want) <= 2e-3f);  // values are O(1): f16 keeps ~3 digits
  }
}

TEST_CASE("tools: .bin and .safetensors checkpoints convert to the same bundle") {
  ECR_REQUIRE_TORCH();
  ECR_REQUIRE_SHARED_DATA();
  const fs::path dir = test::temp_dir("tools_convert_formats");
  REQUIRE(make_gpt2(dir / "g_bin", "--classifier 9") == 0);
  REQUIRE(make_gpt2(dir / "g_st", "--classifier 9 --safetensors") == 0);
  REQUIRE(make_roberta(dir / "r_bin") == 0);
  REQUIRE(make_roberta(dir / "r_st", "--safetensors") == 0);
  REQUIRE(make_roberta(dir / "r_bare", "--bare") == 0);
  CHECK(fs::exists(dir / "g_st" / "model.safetensors"));
  CHECK_FALSE(fs::exists(dir / "g_st" / "pytorch_model.bin"));
  const auto convert = [&](const std::string& out, const std::string& g, const std::string& r) {
    return test::run_python(fmt::format("convert --out {} --gpt2 emotion={} --roberta text_encoder={} --codec zstd",
                                        (dir / out).string(), (dir / g).string(), (dir / r).string()));
  };
  REQUIRE(convert("bin.ecr", "g_bin", "r_bin") == 0);
  REQUIRE(convert("st.ecr", "g_st", "r_st") == 0);
  REQUIRE(convert("bare.ecr", "g_st", "r_bare") == 0);
  CHECK(read_file(dir / "bin.ecr") == read_file(dir / "st.ecr"));

  const Bundle b = Bundle::open(dir / "st.ecr");
  const auto& meta = b.metadata();
  CHECK(meta["components"]["emotion"]["type"] == "gpt2_classifier");
  CHECK(meta["components"]["emotion"]["config"]["id2label"]["8"] == "surprise");
  CHECK(b.tensor("emotion/score.weight").shape() == Shape{9, 16});
  CHECK_FALSE(b.contains("emotion/lm_head.weight"));
  const auto& r = meta["components"]["text_encoder"];
  CHECK(r["type"] == "roberta");
  REQUIRE(r["tokenizer"] == "roberta");
  const auto& tok = meta["tokenizers"]["roberta"];
  CHECK(tok["vocab"]["<s>"] == 0);
  CHECK(tok["vocab"]["<pad>"] == 1);
  CHECK(tok["vocab"]["</s>"] == 2);
  CHECK(tok["vocab"]["<unk>"] == 3);
  CHECK(tok["vocab"]["<mask>"] == 50264);
  CHECK(tok["vocab"].size() == 50265);
  CHECK(tok["added_tokens"]["<movie>"] == 50265);
  CHECK(b.tensor("text_encoder/embeddings.word_embeddings.weight").shape() == Shape{50266, 16});
  CHECK(b.tensor("text_encoder/embeddings.position_embeddings.weight").shape() == Shape{32, 16});
  CHECK(b.tensor("text_encoder/encoder.layer.1.intermediate.dense.weight").shape() == Shape{24, 16});

  // The bare RobertaModel layout gives the same tensors under the same names (its pooler dropped).
  const Bundle bare = Bundle::open(dir / "bare.ecr");
  REQUIRE(bare.tensors().size() == b.tensors().size());
  for (std::size_t i = 0; i < b.tensors().size(); ++i) {
    const TensorInfo &x = b.tensors()[i], &y = bare.tensors()[i];
    CAPTURE(x.name);
    CHECK(x.name == y.name);
    CHECK(x.name.find("roberta.") == std::string::npos);
    CHECK(x.name.find("lm_head") == std::string::npos);
    CHECK(x.name.find("pooler") == std::string::npos);
    CHECK(x.name.find("position_ids") == std::string::npos);
    CHECK(x.crc32 == y.crc32);
  }
}

namespace {

// Copies checkpoint folder SRC to DST and rewrites one tensor of its pytorch_model.bin: drops
// it (shape "drop") or gives it a new shape. Arguments: SRC DST KEY SHAPE, repeated.
constexpr std::string_view kBreakCheckpoints = R"PY(
import shutil, sys, torch
args = sys.argv[1:]
for src, dst, key, shape in zip(args[0::4], args[1::4], args[2::4], args[3::4]):
    shutil.copytree(src, dst)
    sd = torch.load(f"{dst}/pytorch_model.bin", map_location="cpu")
    if shape == "drop":
        del sd[key]
    else:
        sd[key] = torch.zeros([int(s) for s in shape.split(",")])
    torch.save(sd, f"{dst}/pytorch_model.bin")
)PY";

}  // namespace

TEST_CASE("tools: the converter refuses a checkpoint with a wrong or missing tensor, naming it") {
  ECR_REQUIRE_TORCH();
  ECR_REQUIRE_SHARED_DATA();
  const fs::path dir = test::temp_dir("tools_convert_bad");
  REQUIRE(make_gpt2(dir / "gpt2") == 0);
  REQUIRE(make_roberta(dir / "roberta") == 0);
  struct Case {
    std::string model, key, shape, expected;
  };
  const std::vector<Case> cases = {
      {"gpt2", "transformer.h.1.mlp.c_fc.weight", "16,63", "expected [16, 64]"},
      {"gpt2", "transformer.wpe.weight", "33,16", "expected [32, 16]"},
      {"gpt2", "transformer.h.0.ln_2.bias", "drop", "missing tensor"},
      {"roberta", "roberta.encoder.layer.0.attention.self.key.weight", "16,15", "expected [16, 16]"}};
  std::string args, out;
  for (std::size_t i = 0; i < cases.size(); ++i)
    args += fmt::format(" {} {} {} {}", (dir / cases[i].model).string(), (dir / fmt::format("bad{}", i)).string(),
                        cases[i].key, cases[i].shape);
  write_file(dir / "break.py", kBreakCheckpoints);
  REQUIRE_MESSAGE(run_script(dir / "break.py", args, &out) == 0, out);

  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& k = cases[i];
    CAPTURE(k.key);
    const fs::path bundle = dir / "out.ecr";
    fs::remove(bundle);
    const int rc = test::run_command(test::python_module_command(fmt::format(
                                         "convert --out {} --{} m={}", bundle.string(), k.model,
                                         (dir / fmt::format("bad{}", i)).string())),
                                     &out);
    CHECK(rc != 0);
    CHECK_FALSE(fs::exists(bundle));
    CHECK_MESSAGE(out.find("'" + k.key + "'") != std::string::npos, out);
    CHECK_MESSAGE(out.find("pytorch_model.bin") != std::string::npos, out);
    CHECK_MESSAGE(out.find(k.expected) != std::string::npos, out);
    CHECK_MESSAGE(out.find("Traceback") == std::string::npos, out);
  }
}

// --- torch reference ------------------------------------------------------------------------

namespace {

// Checks of the oracle itself: a prefix holding the cached keys/values of the first k tokens
// (positions continuing at k) gives the hidden states of a full run; greedy decoding with
// no_repeat_ngram_size 3 never repeats a trigram and stops after eos; both stacks agree with
// torch.nn.TransformerEncoderLayer given the same weights.
constexpr std::string_view kReferenceChecks = R"PY(
import json, os, subprocess, sys
import numpy as np, torch
root, d = sys.argv[1], sys.argv[2]
sys.path.insert(0, root)
from tools.reference import gpt2 as R
from tools.reference.roberta import Roberta
m = R.GPT2(f"{d}/ckpt")
ids, k = [5, 100, 2000, 7, 50256, 300, 42, 9, 50258], 4
cache = []
def keep_kv(t, nh):  # record every layer's keys and values of the short run
    cache.append(t)
    return t.view(t.shape[0], nh, -1).transpose(0, 1)
R.heads, heads = keep_kv, R.heads
m.hidden(ids[:k])
R.heads = heads
kv = [torch.stack([cache[3 * n + 1], cache[3 * n + 2]], 1) for n in range(m.layers)]  # (k, 2, D) per layer
np.save(f"{d}/prefix.npy", torch.stack(kv, 1).reshape(k, -1).numpy())
run = lambda *a: subprocess.run([sys.executable, "-m", "tools.reference", *a], check=True,
                                env=dict(os.environ, PYTHONPATH=root))
run("gpt2", "--checkpoint", f"{d}/ckpt", "--ids", ",".join(map(str, ids)), "--out", f"{d}/full.npy",
    "--hidden-out", f"{d}/full_h.npy")
run("gpt2", "--checkpoint", f"{d}/ckpt", "--ids", ",".join(map(str, ids[k:])), "--prefix", f"{d}/prefix.npy",
    "--positions-from", str(k), "--out", f"{d}/part.npy", "--hidden-out", f"{d}/part_h.npy")
full, part = np.load(f"{d}/full_h.npy"), np.load(f"{d}/part_h.npy")
assert full.shape == (len(ids), 16) and part.shape == (len(ids) - k, 16), (full.shape, part.shape)
err = np.abs(full[k:] - part).max()
assert err < 1e-5, err
logits = np.load(f"{d}/full.npy")
assert logits.shape == (len(ids), 50259), logits.shape
assert np.abs(logits - full @ np.asarray(m.w["transformer.wte.weight"]).T).max() < 1e-4
run("gpt2", "--checkpoint", f"{d}/ckpt", "--ids", ",".join(map(str, ids[k:])), "--out", f"{d}/noprefix.npy",
    "--hidden-out", f"{d}/noprefix_h.npy")
assert np.abs(np.load(f"{d}/noprefix_h.npy") - part).max() > 1e-3  # the prefix matters

run("gpt2-generate", "--checkpoint", f"{d}/ckpt", "--ids", "1,2,3", "--max-new-tokens", "24",
    "--no-repeat-ngram", "3", "--out", f"{d}/gen.json")
g = json.load(open(f"{d}/gen.json"))
seq = g["prompt"] + g["generated"]
assert g["prompt"] == [1, 2, 3] and len(g["generated"]) == 24 and not g["stopped_at_eos"], g
grams = [tuple(seq[i:i + 3]) for i in range(len(seq) - 2)]
assert len(grams) == len(set(grams)), seq
run("gpt2-generate", "--checkpoint", f"{d}/ckpt", "--ids", "1,2,3", "--max-new-tokens", "24", "--out", f"{d}/plain.json")
plain = json.load(open(f"{d}/plain.json"))["generated"]
assert len(set(zip(plain, plain[1:], plain[2:]))) < len(plain) - 2, plain  # without the rule, random weights repeat
eos = plain[0]
run("gpt2-generate", "--checkpoint", f"{d}/ckpt", "--ids", "1,2,3", "--max-new-tokens", "24", "--eos", str(eos),
    "--out", f"{d}/eos.json")
e = json.load(open(f"{d}/eos.json"))
assert e["generated"] == [eos] and e["stopped_at_eos"], e

# Both stacks against torch's own nn.TransformerEncoderLayer (pre-norm + causal mask + tanh GELU
# for GPT-2; post-norm + erf GELU for RoBERTa), weights copied in.
nn, F = torch.nn, torch.nn.functional
def encoder_layer(d, nh, inner, act, norm_first, eps, sd):
    layer = nn.TransformerEncoderLayer(d, nh, inner, dropout=0.0, activation=act, layer_norm_eps=eps,
                                       batch_first=True, norm_first=norm_first)
    layer.load_state_dict(sd)
    return layer.eval()
w, D, T = m.w, m.d, len(ids)
x = w["transformer.wte.weight"][torch.tensor(ids)] + w["transformer.wpe.weight"][:T]
with torch.no_grad():
    for n in range(m.layers):
        p = f"transformer.h.{n}"
        layer = encoder_layer(D, m.nh, 4 * D, lambda t: F.gelu(t, approximate="tanh"), True, 1e-5, {
            "self_attn.in_proj_weight": w[f"{p}.attn.c_attn.weight"].T, "self_attn.in_proj_bias": w[f"{p}.attn.c_attn.bias"],
            "self_attn.out_proj.weight": w[f"{p}.attn.c_proj.weight"].T, "self_attn.out_proj.bias": w[f"{p}.attn.c_proj.bias"],
            "linear1.weight": w[f"{p}.mlp.c_fc.weight"].T, "linear1.bias": w[f"{p}.mlp.c_fc.bias"],
            "linear2.weight": w[f"{p}.mlp.c_proj.weight"].T, "linear2.bias": w[f"{p}.mlp.c_proj.bias"],
            "norm1.weight": w[f"{p}.ln_1.weight"], "norm1.bias": w[f"{p}.ln_1.bias"],
            "norm2.weight": w[f"{p}.ln_2.weight"], "norm2.bias": w[f"{p}.ln_2.bias"]})
        x = layer(x[None], src_mask=torch.triu(torch.full((T, T), float("-inf")), 1))[0]
    x = F.layer_norm(x, (D,), w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], 1e-5)
err = np.abs(x.numpy() - full).max()
assert err < 1e-4, f"gpt2 vs nn.TransformerEncoderLayer: {err}"

r = Roberta(f"{d}/roberta")
rids = [[0, 5, 6, 700, 50264, 2], [0, 9, 2]]
run("roberta", "--checkpoint", f"{d}/roberta", "--ids", ",".join(map(str, rids[0])), "--ids",
    ",".join(map(str, rids[1])), "--out", f"{d}/roberta.npy")
got = np.load(f"{d}/roberta.npy")
assert got.shape == (2, 6, 16) and not got[1, 3:].any(), got.shape
w, D, c = r.w, 16, r.config
for b, seq in enumerate(rids):
    T = len(seq)
    x = (w["embeddings.word_embeddings.weight"][torch.tensor(seq)] + w["embeddings.position_embeddings.weight"][2:T + 2] +
         w["embeddings.token_type_embeddings.weight"][0])
    x = F.layer_norm(x, (D,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], 1e-5)
    with torch.no_grad():
        for n in range(r.layers):
            p = f"encoder.layer.{n}"
            a = f"{p}.attention.self"
            layer = encoder_layer(D, r.nh, c["intermediate_size"], "gelu", False, 1e-5, {
                "self_attn.in_proj_weight": torch.cat([w[f"{a}.{q}.weight"] for q in ("query", "key", "value")]),
                "self_attn.in_proj_bias": torch.cat([w[f"{a}.{q}.bias"] for q in ("query", "key", "value")]),
                "self_attn.out_proj.weight": w[f"{p}.attention.output.dense.weight"],
                "self_attn.out_proj.bias": w[f"{p}.attention.output.dense.bias"],
                "linear1.weight": w[f"{p}.intermediate.dense.weight"], "linear1.bias": w[f"{p}.intermediate.dense.bias"],
                "linear2.weight": w[f"{p}.output.dense.weight"], "linear2.bias": w[f"{p}.output.dense.bias"],
                "norm1.weight": w[f"{p}.attention.output.LayerNorm.weight"],
                "norm1.bias": w[f"{p}.attention.output.LayerNorm.bias"],
                "norm2.weight": w[f"{p}.output.LayerNorm.weight"], "norm2.bias": w[f"{p}.output.LayerNorm.bias"]})
            x = layer(x[None])[0]
    err = np.abs(x.numpy() - got[b, :T]).max()
    assert err < 1e-4, f"roberta vs nn.TransformerEncoderLayer: {err}"
print("reference checks ok")
)PY";

}  // namespace

TEST_CASE("tools: torch reference = nn.TransformerEncoderLayer, prefix = cached keys/values, decoding rules") {
  ECR_REQUIRE_TORCH();
  ECR_REQUIRE_SHARED_DATA();
  const fs::path dir = test::temp_dir("tools_reference");
  REQUIRE(make_gpt2(dir / "ckpt") == 0);
  REQUIRE(make_roberta(dir / "roberta", "--bare --safetensors") == 0);
  write_file(dir / "checks.py", kReferenceChecks);
  std::string out;
  const int rc = run_script(dir / "checks.py", fmt::format("{} {}", test::source_dir().string(), dir.string()), &out);
  CHECK_MESSAGE(rc == 0, out);
}
