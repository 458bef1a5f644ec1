// The byte-level BPE tokenizer against GPT-2 ids produced by an independent implementation
// (shared/data/gpt2/reference_tokens.jsonl), plus special tokens, bad input and the CLI.
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "ecr/core/error.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/text/byte_level_bpe.hpp"
#include "support.hpp"
#include "tokenizer_fixtures.hpp"

namespace {

using ecr::text::ByteLevelBpe;
using ecr::test::fs::path;
using Ids = std::vector<std::int32_t>;

using ecr::test::ecr_gpt2;
using ecr::test::gpt2_dir;

Ids concat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct Reference {
  std::string text;
  Ids ids;
};

std::vector<Reference> read_reference() {
  std::ifstream in(gpt2_dir() / "reference_tokens.jsonl");
  REQUIRE(in);
  std::vector<Reference> out;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    out.push_back({j.at("text").get<std::string>(), j.at("ids").get<Ids>()});
  }
  return out;
}

}  // namespace

TEST_CASE("tokenizer: every reference line encodes to its ids and decodes back") {
  ECR_REQUIRE_SHARED_DATA();
  const ByteLevelBpe tok = ecr_gpt2();
  const auto reference = read_reference();
  REQUIRE(reference.size() > 1000);
  std::size_t encode_mismatches = 0, decode_mismatches = 0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    const auto& [text, ids] = reference[i];
    const Ids got = tok.encode(text);
    if (got != ids && ++encode_mismatches <= 10)
      MESSAGE(fmt::format("line {}: {:?}\n  expected {}\n  got      {}", i + 1, text, ids, got));
    const std::string back = tok.decode(ids);
    if (back != text && ++decode_mismatches <= 10)
      MESSAGE(fmt::format("line {}: decode gives {:?}, expected {:?}", i + 1, back, text));
  }
  CHECK(encode_mismatches == 0);
  CHECK(decode_mismatches == 0);
}

TEST_CASE("tokenizer: vocab size, token lookups and unknown ids") {
  ECR_REQUIRE_SHARED_DATA();
  const ByteLevelBpe tok = ecr_gpt2();
  CHECK(tok.vocab_size() == 50259);
  CHECK(tok.token_to_id("<|endoftext|>") == 50256);
  CHECK(tok.token_to_id("<movie>") == 50258);
  CHECK(tok.token_to_id("\xC4\xA0the") == 262);  // "Ġthe"
  CHECK_FALSE(tok.token_to_id("no such token").has_value());
  CHECK(tok.id_to_token(262) == "\xC4\xA0the");
  CHECK(tok.id_to_token(50257) == "<pad>");
  CHECK_THROWS_AS(tok.id_to_token(50259), ecr::InputError);
  const Ids bad = {262, -1};
  CHECK_THROWS_AS(tok.decode(bad), ecr::InputError);
  const Ids past_end = {50259};
  CHECK_THROWS_AS(tok.decode(past_end), ecr::InputError);
  // An id that ends inside a character decodes to U+FFFD rather than broken UTF-8.
  const Ids half_emoji = {8582};  // the first bytes of U+1F600 (line "emoji ..." of the reference)
  CHECK(tok.decode(half_emoji) == "\xEF\xBF\xBD");
}

TEST_CASE("tokenizer: special and added tokens are split out of the text") {
  ECR_REQUIRE_SHARED_DATA();
  const ByteLevelBpe tok = ecr_gpt2();
  // The stretches between special tokens encode as they would alone.
  CHECK(tok.encode("Hi<|endoftext|>there <movie> ok") ==
        concat({tok.encode("Hi"), {50256}, tok.encode("there "), {50258}, tok.encode(" ok")}));
  CHECK(tok.encode("<pad><pad>") == Ids{50257, 50257});
  CHECK(tok.encode("User: hello<|endoftext|>") == concat({tok.encode("User: hello"), {50256}}));
  CHECK(tok.decode(tok.encode("a<movie>b<|endoftext|>")) == "a<movie>b<|endoftext|>");
  // Not special: a near miss and a tag GPT-2's vocab does not know.
  CHECK(tok.encode("<|endoftext|").size() > 1);
  CHECK(tok.encode("<s>") == concat({tok.encode("<"), tok.encode("s"), tok.encode(">")}));
  // Longest match wins when added tokens overlap.
  const ByteLevelBpe overlap = ByteLevelBpe::from_files(gpt2_dir() / "encoder.json", gpt2_dir() / "vocab.bpe",
                                                        {{"<mov>", 50257}, {"<movie>", 50258}});
  CHECK(overlap.encode("x<movie>") == concat({tok.encode("x"), {50258}}));
  CHECK(overlap.encode("x<mov>ie>") == concat({tok.encode("x"), {50257}, tok.encode("ie>")}));
}

TEST_CASE("tokenizer: invalid UTF-8 is an InputError naming the byte offset") {
  ECR_REQUIRE_SHARED_DATA();
  const ByteLevelBpe tok = ecr_gpt2();
  const std::string cases[] = {
      std::string("abc\xFFxyz"),         // not a lead byte
      std::string("abc\xC3"),            // truncated
      std::string("abc\xC0\xAF"),        // overlong
      std::string("abc\xED\xA0\x80"),    // surrogate
      std::string("abc\xF4\x90\x80\x80"),  // above U+10FFFF
  };
  for (const auto& text : cases) {
    CAPTURE(text);
    try {
      tok.encode(text);
      FAIL("no error");
    } catch (const ecr::InputError& e) {
      CHECK(std::string(e.what()).find("byte offset 3") != std::string::npos);
    }
  }
  CHECK(tok.encode("").empty());
}

TEST_CASE("tokenizer: from_json(to_json()) encodes identically") {
  ECR_REQUIRE_SHARED_DATA();
  const ByteLevelBpe tok = ecr_gpt2();
  const nlohmann::json spec = tok.to_json();
  CHECK(spec.at("kind") == "byte_bpe");
  CHECK(spec.at("added_tokens").at("<movie>") == 50258);
  // Through text, as a bundle stores it.
  const ByteLevelBpe copy = ByteLevelBpe::from_json(nlohmann::json::parse(spec.dump()));
  CHECK(copy.vocab_size() == tok.vocab_size());
  const auto reference = read_reference();
  std::size_t differ = 0;
  for (const auto& r : reference) differ += copy.encode(r.text) != tok.encode(r.text);
  CHECK(differ == 0);
  CHECK(copy.encode("Hi<|endoftext|>there <movie> ok") == tok.encode("Hi<|endoftext|>there <movie> ok"));

  nlohmann::json bad = spec;
  bad["kind"] = "sentencepiece";
  CHECK_THROWS_AS(ByteLevelBpe::from_json(bad), ecr::ConfigError);
  bad = spec;
  bad["merges"] = "#version: 0.2\n\xC4\xA0 t\nnot-in-vocab x\n";
  CHECK_THROWS_WITH_AS(ByteLevelBpe::from_json(bad), doctest::Contains("line 3"), ecr::FormatError);
  bad = spec;
  bad["added_tokens"] = {{"<pad>", 262}};  // clashes with "Ġthe"
  CHECK_THROWS_AS(ByteLevelBpe::from_json(bad), ecr::FormatError);
  bad = spec;
  bad["vocab"]["\xC4\xA0the"] = -5;
  CHECK_THROWS_AS(ByteLevelBpe::from_json(bad), ecr::FormatError);
}

TEST_CASE("tokenizer: a RoBERTa-style vocab splits out <s> and </s>") {
  ECR_REQUIRE_SHARED_DATA();
  const ByteLevelBpe gpt2 = ecr_gpt2();
  const nlohmann::json vocab = ecr::test::roberta_style_vocab();
  const path dir = ecr::test::temp_dir("tokenizer_roberta");
  std::ofstream(dir / "vocab.json") << vocab.dump();
  const ByteLevelBpe roberta =
      ByteLevelBpe::from_files(dir / "vocab.json", gpt2_dir() / "vocab.bpe", {{"<movie>", 50265}});
  CHECK(roberta.vocab_size() == 50266);
  auto shifted = [&](std::string_view text) {
    Ids ids = gpt2.encode(text);
    for (auto& id : ids) id += 4;
    return ids;
  };
  CHECK(roberta.encode("User: Hi</s>System: Have you seen <movie>?</s>") ==
        concat({shifted("User: Hi"), {2}, shifted("System: Have you seen "), {50265}, shifted("?"), {2}}));
  CHECK(roberta.encode("<s>x<pad><unk> <mask>") == concat({{0}, shifted("x"), {1, 3}, shifted(" "), {50264}}));
  CHECK(roberta.decode(roberta.encode("<s>Hello</s>")) == "<s>Hello</s>");
}

TEST_CASE("tokenizer: concurrent encodes agree") {
  ECR_REQUIRE_SHARED_DATA();
  const ByteLevelBpe tok = ecr_gpt2();
  const auto reference = read_reference();
  std::vector<std::size_t> wrong(4, 0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < wrong.size(); ++t)
    threads.emplace_back([&, t] {
      for (std::size_t i = t; i < reference.size(); i += wrong.size())
        wrong[t] += tok.encode(reference[i].text) != reference[i].ids;
    });
  for (auto& th : threads) th.join();
  for (std::size_t w : wrong) CHECK(w == 0);
}

TEST_CASE("tokenizer: bad vocab and merges files are typed errors") {
  ECR_REQUIRE_SHARED_DATA();
  const path dir = ecr::test::temp_dir("tokenizer_bad_files");
  CHECK_THROWS_AS(ByteLevelBpe::from_files(dir / "missing.json", gpt2_dir() / "vocab.bpe"), ecr::IoError);
  std::ofstream(dir / "broken.json") << "{\"a\": 1,";
  CHECK_THROWS_WITH_AS(ByteLevelBpe::from_files(dir / "broken.json", gpt2_dir() / "vocab.bpe"),
                       doctest::Contains("broken.json"), ecr::FormatError);
  std::ofstream(dir / "small.json") << R"({"a": 0, "b": 1})";
  CHECK_THROWS_WITH_AS(ByteLevelBpe::from_files(dir / "small.json", gpt2_dir() / "vocab.bpe"),
                       doctest::Contains("no token for byte"), ecr::FormatError);
}

TEST_CASE("tokenizer: the ecr tokenize command") {
  ECR_REQUIRE_SHARED_DATA();
  const ByteLevelBpe tok = ecr_gpt2();
  const path dir = ecr::test::temp_dir("tokenizer_cli");
  {
    std::ofstream in(dir / "in.jsonl");
    in << R"({"text": "Hi, what kind of movies do you like?"})" << "\n"
       << R"({"text": "I loved <movie>!<|endoftext|>"})" << "\n";
  }
  const std::string base =
      fmt::format("{} tokenize --vocab {} --merges {} --added '{{\"<pad>\":50257,\"<movie>\":50258}}'",
                  ecr::test::cli_path().string(), (gpt2_dir() / "encoder.json").string(),
                  (gpt2_dir() / "vocab.bpe").string());
  std::string out;
  REQUIRE(ecr::test::run_command(fmt::format("{} < {}", base, (dir / "in.jsonl").string()), &out) == 0);
  std::istringstream lines(out);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(nlohmann::json::parse(line));
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].at("text") == "Hi, what kind of movies do you like?");
  CHECK(rows[0].at("ids").get<Ids>() == Ids{17250, 11, 644, 1611, 286, 6918, 466, 345, 588, 30});
  CHECK(rows[1].at("ids").get<Ids>() == tok.encode("I loved <movie>!<|endoftext|>"));

  // The same tokenizer from a bundle's metadata.
  ecr::BundleWriter(nlohmann::json{{"tokenizers", {{"gpt2", tok.to_json()}}}}).write(dir / "tok.ecrb");
  const std::string from_bundle =
      fmt::format("{} tokenize --bundle {} --tokenizer", ecr::test::cli_path().string(), (dir / "tok.ecrb").string());
  std::string bundle_out;
  REQUIRE(ecr::test::run_command(fmt::format("{} gpt2 --input {}", from_bundle, (dir / "in.jsonl").string()),
                                 &bundle_out) == 0);
  CHECK(bundle_out == out);
  REQUIRE(ecr::test::run_command(fmt::format("{} roberta < {}", from_bundle, (dir / "in.jsonl").string()), &out) != 0);
  CHECK(out.find("no tokenizer 'roberta'") != std::string::npos);

  // A bad line names its number.
  {
    std::ofstream in(dir / "bad.jsonl");
    in << R"({"text": "fine"})" << "\n" << R"({"txt": "oops"})" << "\n";
  }
  REQUIRE(ecr::test::run_command(fmt::format("{} --input {}", base, (dir / "bad.jsonl").string()), &out) != 0);
  CHECK(out.find("line 2") != std::string::npos);
}
