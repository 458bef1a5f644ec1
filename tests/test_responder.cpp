// Responder (docs/math.md sections 7 and 8): the prompt text byte for byte against hand-written strings, the
// template and reply clean-up, streaming, the review-entity store (C++ reader, Python builder),
// knowledge retrieval on a hand-written KG, and the whole reply on a random bundle against the
// torch reference (tools/reference/responder.py): template tokens with the conv prefix, reply
// tokens from the generator's prompt, both greedy with no repeated 3-grams.
#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ecr/core/utf8.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/kg/review_store.hpp"
#include "ecr/responder.hpp"
#include "ecr/text/byte_level_bpe.hpp"
#include "model_fixtures.hpp"
#include "pipeline/reply_text.hpp"
#include "pipeline/retrieval.hpp"
#include "responder_fixture.hpp"

using namespace ecr;
using namespace ecr::responder;
using ecr::test::file_text;
using ecr::test::join_ids;
using ecr::test::run_python;
using ecr::test::shared_data;
using ecr::test::temp_dir;
namespace fs = std::filesystem;

namespace {

constexpr std::int32_t kEos = 50256;
constexpr std::int32_t kPad = 50257;

ecr::text::ByteLevelBpe gpt2_tokenizer() {
  return ecr::text::ByteLevelBpe::from_files(shared_data() / "gpt2" / "encoder.json",
                                             shared_data() / "gpt2" / "vocab.bpe", {{"<pad>", kPad}, {"<movie>", 50258}});
}

// GPT-2's byte-level alphabet: the vocab symbol of one raw byte.
std::string byte_symbol(std::uint8_t byte) {
  std::vector<int> bs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  std::vector<char32_t> cs(bs.begin(), bs.end());
  int extra = 0;
  for (int b = 0; b < 256; ++b)
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
      bs.push_back(b);
      cs.push_back(static_cast<char32_t>(256 + extra++));
    }
  std::string out;
  append_utf8(out, cs[static_cast<std::size_t>(std::find(bs.begin(), bs.end(), byte) - bs.begin())]);
  return out;
}

std::int32_t token(const Tokenizer& t, std::string_view symbol) {
  const auto id = t.token_to_id(symbol);
  REQUIRE_MESSAGE(id.has_value(), "no token " << symbol);
  return *id;
}

KnowledgeGraph tiny_kg() {
  const fs::path dir = temp_dir("responder_tiny_kg");
  test::write_tiny_kg(dir);
  return KnowledgeGraph::from_files(dir);
}

std::vector<std::string> texts(const std::vector<KnowledgeTriple>& triples) {
  std::vector<std::string> out;
  for (const auto& t : triples) out.push_back(t.text());
  return out;
}

// String table tensors (offsets, bytes) as docs/format.md lays them out.
void add_strings(BundleWriter& w, const std::string& name, const std::vector<std::string>& values) {
  std::vector<std::int64_t> offsets{0};
  std::vector<std::uint8_t> bytes;
  for (const auto& v : values) {
    bytes.insert(bytes.end(), v.begin(), v.end());
    offsets.push_back(static_cast<std::int64_t>(bytes.size()));
  }
  w.add(name + "/offsets", Tensor::from_vector(offsets, {static_cast<std::int64_t>(offsets.size())}));
  w.add(name + "/bytes", Tensor::from_vector(bytes, {static_cast<std::int64_t>(bytes.size())}));
}

}  // namespace

// --- text -------------------------------------------------------------------------------------

TEST_CASE("responder text: the generator prompt is ECR's, byte for byte") {
  const std::vector<std::string> movies = {"The Matrix (1999)"};
  const std::vector<std::string> entities = {"Virtual reality", "Kung fu"};
  const std::vector<KnowledgeTriple> knowledge = {{"The Matrix (1999)", "starring", "Keanu Reeves"},
                                                  {"The Matrix (1999)", "writer", "Lana Wachowski"}};
  CHECK(knowledge[0].text() == "The Matrix (1999)'s starring is Keanu Reeves");
  CHECK(generator_prompt_text(movies, entities, knowledge, "You should watch The Matrix (1999)!") ==
        "Movie Name: The Matrix (1999)<|endoftext|>"
        "Related Entities: Virtual reality, Kung fu<|endoftext|>"
        "Related Knowledge from KG: The Matrix (1999)'s starring is Keanu Reeves, "
        "The Matrix (1999)'s writer is Lana Wachowski<|endoftext|>"
        "First Sentence: You should watch The Matrix (1999)!<|endoftext|>");
  // Empty lists read "None"; several movies are joined by ", ".
  const std::vector<std::string> two = {"Speed (1994)", "Heat (1995)"};
  CHECK(generator_prompt_text(two, {}, {}, "") ==
        "Movie Name: Speed (1994), Heat (1995)<|endoftext|>Related Entities: None<|endoftext|>"
        "Related Knowledge from KG: None<|endoftext|>First Sentence: <|endoftext|>");
}

TEST_CASE("responder text: the template follows the last 'System: ' and its slots take the names") {
  CHECK(template_from_decoded("System: You should try <movie>!<|endoftext|>") == "You should try <movie>!");
  CHECK(template_from_decoded("System: Hi System: Have you seen <movie>?  ") == "Have you seen <movie>?");
  CHECK(template_from_decoded("System:<pad> cue after the pad<|endoftext|>") == "cue after the pad");
  CHECK(template_from_decoded("System:I like it") == "System:I like it");  // no "System: ": all of it
  const std::vector<std::string> names = {"Speed (1994)", "Heat (1995)"};
  CHECK(fill_template("Try <movie> or <movie>.", names) == "Try Speed (1994), Heat (1995) or Speed (1994), Heat (1995).");
  CHECK(fill_template("No slot.", names) == "No slot.");
  CHECK(without_parenthetical("John Williams (composer)") == "John Williams");
  CHECK(without_parenthetical("Se7en") == "Se7en");
  CHECK(without_parenthetical("(500) Days of Summer") == "(500) Days of Summer");
}

TEST_CASE("responder text: Python's strip and ECR's clean-up") {
  CHECK(strip(" \t\n x y \r\x1f") == "x y");
  CHECK(strip("\xC2\xA0" "caf\xC3\xA9\xE3\x80\x80") == "caf\xC3\xA9");  // NBSP and ideographic space
  CHECK(strip("   ").empty());
  CHECK(clean_decoded(" Hi<pad> there<|endoftext|> ") == "Hi there");
  CHECK(clean_decoded("<|endoftext|>").empty());
}

TEST_CASE("responder text: generator prompt ids are the first 149 tokens, then eos") {
  ECR_REQUIRE_SHARED_DATA();
  const Tokenizer& t = gpt2_tokenizer();
  const std::string short_text = generator_prompt_text(std::vector<std::string>{"Heat (1995)"}, {}, {}, "Try it!");
  const auto ids = generator_prompt_ids(t, short_text, 149, kEos);
  CHECK(ids == t.encode(short_text));  // untruncated: the text's own final <|endoftext|>
  std::string long_sentence;
  for (int i = 0; i < 100; ++i) long_sentence += " word" + std::to_string(i);
  const std::string long_text = generator_prompt_text(std::vector<std::string>{"Heat (1995)"}, {}, {}, long_sentence);
  const auto cut = generator_prompt_ids(t, long_text, 149, kEos);
  const auto all = t.encode(long_text);
  REQUIRE(cut.size() == 150);
  CHECK(std::equal(cut.begin(), cut.end() - 1, all.begin()));
  CHECK(cut.back() == kEos);
}

TEST_CASE("responder text: streamed pieces are whole characters that add up to the reply") {
  ECR_REQUIRE_SHARED_DATA();
  const Tokenizer& t = gpt2_tokenizer();
  // " Hello caf" + é split in two byte tokens + " " + <pad> + "<", "pad", ">" spelled as text,
  // " " + 😀 split in four byte tokens + " ok" + trailing spaces + eos.
  std::vector<std::int32_t> ids = {token(t, "ĠHello"), token(t, "Ġcaf"), token(t, byte_symbol(0xC3)),
                                   token(t, byte_symbol(0xA9)), token(t, "Ġ"), kPad, token(t, "<"), token(t, "pad"),
                                   token(t, ">"), token(t, "Ġ")};
  for (std::uint8_t b : {0xF0, 0x9F, 0x98, 0x80}) ids.push_back(token(t, byte_symbol(b)));
  for (std::int32_t id : {token(t, "Ġok"), token(t, "Ġ"), token(t, "Ġ"), kEos}) ids.push_back(id);

  const std::string reply = clean_decoded(t.decode(ids));
  CHECK(reply == "Hello caf\xC3\xA9  \xF0\x9F\x98\x80 ok");
  std::vector<std::string> pieces;
  ReplyTextStream stream(t, [&](std::string_view piece) {
    pieces.emplace_back(piece);
    return true;
  });
  for (const std::int32_t id : ids) CHECK(stream.push(id));
  stream.finish(reply);
  std::string joined;
  for (const auto& p : pieces) {
    CHECK_MESSAGE(is_valid_utf8(p), "piece '" << p << "'");
    CHECK(p.find("\xEF\xBF\xBD") == std::string::npos);
    CHECK(p.find('<') == std::string::npos);
    joined += p;
  }
  CHECK(joined == reply);
  CHECK(pieces.size() >= 4);  // it did stream: more than the final flush

  // A sink that says stop is heard.
  ReplyTextStream stopping(t, [](std::string_view) { return false; });
  CHECK(stopping.push(token(t, "Ġ")));  // nothing to show yet: the sink is not asked
  CHECK_FALSE(stopping.push(token(t, "ĠHello")));
}

// --- review store -----------------------------------------------------------------------------

TEST_CASE("review store: movie keys and lookups by KG id or name") {
  CHECK(review_movie_key("The Shining (1980)") == "The Shining");
  CHECK(review_movie_key("<http://dbpedia.org/resource/The_Matrix_(film)>") == "The Matrix");
  CHECK(review_movie_key("  Heat  ") == "Heat");
  CHECK(review_movie_key("(500) Days of Summer (2009)") == "(500) Days of Summer (2009)");

  const ReviewStore store = ReviewStore::from_movies(
      {{"The Matrix", 0, {{"Philosophy", 3}, {"Kung fu", 3}, {"Virtual reality", 5}, {"Hacker", 2}}},
       {"Speed", -1, {{"Bus", 4}}}});
  CHECK(store.num_movies() == 2);
  CHECK(store.num_entities() == 5);
  const auto matrix = store.find(0, "ignored");
  REQUIRE(matrix.size() == 4);
  CHECK(matrix[0].entity == "Virtual reality");
  CHECK(matrix[0].count == 5);
  CHECK(matrix[1].entity == "Kung fu");  // ties by name
  CHECK(matrix[2].entity == "Philosophy");
  CHECK(matrix[3].entity == "Hacker");
  CHECK(store.find(std::nullopt, "The Matrix (1999)").size() == 4);
  CHECK(store.find(7, "Speed (1994)").front().entity == "Bus");  // id unknown: by name
  CHECK(store.find(std::nullopt, "Heat (1995)").empty());
  CHECK_THROWS_AS(ReviewStore::from_movies({{"A", -1, {{"x", 0}}}}), InputError);
  CHECK_THROWS_AS(ReviewStore::from_movies({{"A", -1, {}}, {"A", -1, {}}}), InputError);
}

TEST_CASE("review store: bundle tensors are read and checked") {
  const auto write = [](const fs::path& path, const std::function<void(BundleWriter&)>& tamper = {}) {
    BundleWriter w(nlohmann::json{{"review_entities", {{"movies", 2}, {"entities", 3}, {"entries", 4}}}});
    if (tamper) tamper(w);
    add_strings(w, "review_entities/movie_keys", {"Speed", "The Matrix"});
    w.add("review_entities/movie_kg_ids", Tensor::from_vector(std::vector<std::int32_t>{-1, 0}, {2}));
    add_strings(w, "review_entities/entity_names", {"Bus", "Kung fu", "Virtual reality"});
    w.add("review_entities/entity_kg_ids", Tensor::from_vector(std::vector<std::int32_t>{-1, 12, -1}, {3}));
    w.add("review_entities/indptr", Tensor::from_vector(std::vector<std::int64_t>{0, 1, 4}, {3}));
    if (!tamper) {
      w.add("review_entities/entries", Tensor::from_vector(std::vector<std::int32_t>{0, 2, 1, 0}, {4}));
      w.add("review_entities/counts", Tensor::from_vector(std::vector<std::int32_t>{2, 5, 3, 1}, {4}));
    }
    w.write(path);
  };
  const fs::path dir = temp_dir("review_store_bundle");
  write(dir / "ok.ecr");
  const Bundle bundle = Bundle::open(dir / "ok.ecr");
  REQUIRE(ReviewStore::present(bundle));
  const ReviewStore store = ReviewStore::load(bundle);
  const auto matrix = store.find(0, "");
  REQUIRE(matrix.size() == 3);
  CHECK(matrix[0].entity == "Virtual reality");
  CHECK(matrix[1].entity == "Kung fu");
  CHECK(matrix[1].kg_id == 12);
  CHECK(matrix[2].count == 1);
  CHECK(store.find(std::nullopt, "Speed (1994)").front().count == 2);

  const auto bad = [&](const char* name, std::vector<std::int32_t> entries, std::vector<std::int32_t> counts) {
    write(dir / (std::string(name) + ".ecr"), [&](BundleWriter& w) {
      w.add("review_entities/entries", Tensor::from_vector(entries, {4}));
      w.add("review_entities/counts", Tensor::from_vector(counts, {4}));
    });
    return Bundle::open(dir / (std::string(name) + ".ecr"));
  };
  CHECK_THROWS_AS(ReviewStore::load(bad("index", {0, 2, 3, 0}, {1, 1, 1, 1})), FormatError);
  CHECK_THROWS_AS(ReviewStore::load(bad("count", {0, 2, 1, 0}, {1, 0, 1, 1})), FormatError);
  BundleWriter wrong_dtype(nlohmann::json{{"review_entities", {{"movies", 1}, {"entities", 0}, {"entries", 0}}}});
  add_strings(wrong_dtype, "review_entities/movie_keys", {"Speed"});
  add_strings(wrong_dtype, "review_entities/entity_names", {});
  wrong_dtype.add("review_entities/movie_kg_ids", Tensor::from_vector(std::vector<std::int64_t>{-1}, {1}));
  wrong_dtype.write(dir / "dtype.ecr");
  CHECK_THROWS_AS(ReviewStore::load(Bundle::open(dir / "dtype.ecr")), ShapeError);
  BundleWriter missing(nlohmann::json{{"review_entities", {{"movies", 1}, {"entities", 0}, {"entries", 0}}}});
  missing.write(dir / "missing.ecr");
  CHECK_THROWS_AS(ReviewStore::load(Bundle::open(dir / "missing.ecr")), FormatError);
  BundleWriter none(nlohmann::json{{"ecr_bundle", 1}});
  none.write(dir / "none.ecr");
  CHECK_FALSE(ReviewStore::present(Bundle::open(dir / "none.ecr")));
  CHECK_THROWS_AS(ReviewStore::load(Bundle::open(dir / "none.ecr")), FormatError);
}

TEST_CASE("review store: tools/ecr_reviews.py counts the shared reviews") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();  // Debian's python with numpy
  const fs::path dir = temp_dir("review_store_converter");
  const fs::path reviews = shared_data() / "reviews" / "movie_reviews.json";
  REQUIRE(run_python(fmt::format("ecr_reviews --reviews {} --kg {} --out {}/r.ecr", reviews.string(),
                                 (shared_data() / "redial").string(), dir.string())) == 0);
  const ReviewStore store = ReviewStore::load(Bundle::open(dir / "r.ecr"));

  // An independent count: per movie key, the reviews that name each entity.
  std::map<std::string, std::map<std::string, int>> expected;
  for (const auto& review : nlohmann::json::parse(file_text(reviews))) {
    std::set<std::string> once;
    for (const auto& e : review["e_review"]) once.insert(kg_display_name(e.get<std::string>()));
    for (const auto& name : once) ++expected[review_movie_key(review["movie_name"].get<std::string>())][name];
  }
  CHECK(store.num_movies() == expected.size());
  for (const auto& [key, counts] : expected) {
    const auto found = store.find(std::nullopt, key);
    std::map<std::string, int> got;
    for (const auto& e : found) got[e.entity] += e.count;
    CHECK_MESSAGE(got == counts, key);
    for (std::size_t i = 1; i < found.size(); ++i)
      CHECK((found[i - 1].count > found[i].count ||
             (found[i - 1].count == found[i].count && found[i - 1].entity <= found[i].entity)));
  }
  // Movies that name one KG item are found by its id too.
  const KnowledgeGraph kg = KnowledgeGraph::from_files(shared_data() / "redial");
  const auto platoon = kg.entity_id("Platoon (1986)");
  REQUIRE(platoon.has_value());
  CHECK(store.find(*platoon, "").size() == expected["Platoon"].size());

  // ECR's finished mv2e_review.json is taken as it is.
  std::ofstream(dir / "mv2e.json") << R"J({"Speed": [["<http://dbpedia.org/resource/Bus>", 3], ["Keanu Reeves", 1]]})J";
  REQUIRE(run_python(fmt::format("ecr_reviews --reviews {0}/mv2e.json --out {0}/m.ecr", dir.string())) == 0);
  const auto speed = ReviewStore::load(Bundle::open(dir / "m.ecr")).find(std::nullopt, "Speed (1994)");
  REQUIRE(speed.size() == 2);
  CHECK(speed[0].entity == "Bus");
  CHECK(speed[0].count == 3);
  std::ofstream(dir / "bad.json") << R"J([{"movie_name": "Speed", "e_review": [3]}])J";
  CHECK(run_python(fmt::format("ecr_reviews --reviews {0}/bad.json --out {0}/b.ecr", dir.string())) == 1);
}

// --- retrieval --------------------------------------------------------------------------------

TEST_CASE("retrieval: knowledge relations by name, DBpedia URI or alias") {
  const KnowledgeGraph kg = tiny_kg();
  const auto relations = resolve_relations(kg, kDefaultKnowledgeRelations, false);
  REQUIRE(relations.size() == 5);
  CHECK(relations[0].name == "starring");
  CHECK(kg.relation_name(relations[0].id) == "star");  // the ReDial KG's name
  CHECK(kg.relation_name(relations[2].id) == "<http://dbpedia.org/ontology/productionCompany>");
  const std::vector<std::string> missing = {"director", "cinematography"};
  CHECK(resolve_relations(kg, missing, false).size() == 1);
  CHECK_THROWS_AS(resolve_relations(kg, missing, true), ConfigError);
}

TEST_CASE("retrieval: knowledge triples, best-known neighbours first") {
  const KnowledgeGraph kg = tiny_kg();
  const auto relations = resolve_relations(kg, kDefaultKnowledgeRelations, false);
  const std::vector<PromptItem> matrix = {{0, "The Matrix (1999)"}};
  // Keanu Reeves and Lana Wachowski have two edges each, the others one; ties go by name.
  CHECK(texts(choose_knowledge(kg, matrix, relations, 3, nullptr)) ==
        std::vector<std::string>{"The Matrix (1999)'s starring is Keanu Reeves",
                                 "The Matrix (1999)'s writer is Lana Wachowski",
                                 "The Matrix (1999)'s director is Lana Wachowski"});
  const std::vector<PromptItem> speed = {{1, "Speed (1994)"}};
  // The composer's "(composer)" goes, as ECR's entity2name(flag=True) drops it.
  CHECK(texts(choose_knowledge(kg, speed, relations, 5, nullptr)) ==
        std::vector<std::string>{"Speed (1994)'s starring is Keanu Reeves", "Speed (1994)'s director is Jan de Bont",
                                 "Speed (1994)'s musicComposer is Mark Mancina"});
  const std::vector<std::string> company = {"productionCompany"};
  CHECK(texts(choose_knowledge(kg, matrix, resolve_relations(kg, company, true), 2, nullptr)) ==
        std::vector<std::string>{"The Matrix (1999)'s productionCompany is Warner Bros."});
  const std::vector<PromptItem> unknown = {{std::nullopt, "Heat (1995)"}};
  CHECK(choose_knowledge(kg, unknown, relations, 2, nullptr).empty());
}

TEST_CASE("retrieval: review entities pooled over the items, most frequent first") {
  const ReviewStore store = ReviewStore::from_movies(
      {{"The Matrix", 0, {{"Philosophy", 3}, {"Kung fu", 3}, {"Virtual reality", 5}, {"Hacker", 2}, {"Fiction", 1}}},
       {"Speed", 1, {{"Bus", 4}, {"Kung fu", 1}}}});
  const std::vector<PromptItem> matrix = {{0, "The Matrix (1999)"}};
  CHECK(choose_review_entities(store, matrix, 4, nullptr) ==
        std::vector<std::string>{"Virtual reality", "Kung fu", "Philosophy", "Hacker"});
  const std::vector<PromptItem> both = {{0, "The Matrix (1999)"}, {std::nullopt, "Speed (1994)"}};
  CHECK(choose_review_entities(store, both, 4, nullptr) ==
        std::vector<std::string>{"Virtual reality", "Bus", "Kung fu", "Philosophy"});
}

TEST_CASE("retrieval: a seed samples like ECR, reproducibly") {
  const KnowledgeGraph kg = tiny_kg();
  const auto relations = resolve_relations(kg, kDefaultKnowledgeRelations, false);
  const std::vector<PromptItem> matrix = {{0, "The Matrix (1999)"}};
  const auto all = texts(choose_knowledge(kg, matrix, relations, 100, nullptr));
  REQUIRE(all.size() == 6);
  std::set<std::vector<std::string>> seen;
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 a(seed), b(seed);
    const auto first = texts(choose_knowledge(kg, matrix, relations, 2, &a));
    CHECK(first == texts(choose_knowledge(kg, matrix, relations, 2, &b)));
    REQUIRE(first.size() == 2);
    CHECK(first[0] != first[1]);
    for (const auto& t : first) CHECK(std::find(all.begin(), all.end(), t) != all.end());
    seen.insert(first);
  }
  CHECK(seen.size() > 5);  // not one fixed choice
}

// --- the whole reply on a random bundle ----------------------------------------------------------

namespace {

Dialog fixture_dialog() {
  return Dialog::parse(R"J({"turns": [
    {"role": "user", "text": "Hi! I loved The Matrix (1999). Anything like it?", "entities": [0],
     "emotions": {"like": 0.8, "curious": 0.3}},
    {"role": "system", "text": "Have you seen Speed (1994)?", "entities": [1]},
    {"role": "user", "text": "Not yet \u2014 who is in it?", "emotions": {"curious": 0.6}}]})J");
}

Recommendation fixture_recommendation() {
  Recommendation r;
  r.items = {{0, "The Matrix (1999)", 2.0f}, {1, "Speed (1994)", 1.0f}};
  return r;
}

std::shared_ptr<const Tokenizer> bundle_tokenizer(const Bundle& bundle, const std::string& name) {
  return ecr::make_tokenizer(bundle.metadata()["tokenizers"][name]);
}

}  // namespace

TEST_CASE("responder: template and reply tokens equal the torch reference") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const Bundle bundle = Bundle::open(f.bundle);
  const Responder responder = Responder::load(bundle, ecr::test::gpt2_responder());
  const Dialog dialog = fixture_dialog();
  const Response r = responder.respond(dialog, fixture_recommendation());

  // The inputs, rebuilt here from the public pieces (docs/math.md sections 2 and UniCRS's conv collator).
  const auto gpt2 = bundle_tokenizer(bundle, "gpt2"), roberta = bundle_tokenizer(bundle, "roberta");
  auto context = gpt2->encode(context_text(dialog, "<|endoftext|>"));
  const auto cue = gpt2->encode("System:");
  if (context.size() > 200 - cue.size()) context.erase(context.begin(), context.end() - (200 - cue.size()));
  context.insert(context.end(), cue.begin(), cue.end());
  CHECK(r.template_input_ids == context);
  auto prompt = roberta->encode(context_text(dialog, "</s>"));
  prompt.insert(prompt.begin(), 0);
  CHECK(r.conv_prompt_ids == prompt);
  CHECK(r.conv_entities == std::vector<std::int32_t>{0, 1});

  const fs::path dir = temp_dir("responder_reference");
  REQUIRE(run_python(fmt::format(
              "reference.responder --backbone {0}/backbone --text-encoder {0}/text_encoder --conv-prompt "
              "{0}/conv.pt --kg-dir {0}/kg --context-ids {1} --prompt-ids {2} --entities {3} --generator "
              "{0}/generator --generator-ids {4} --out {5}/ref.json",
              f.dir.string(), join_ids(r.template_input_ids), join_ids(r.conv_prompt_ids), join_ids(r.conv_entities),
              join_ids(r.prompt_ids), dir.string())) == 0);
  const auto ref = nlohmann::json::parse(file_text(dir / "ref.json"));
  CHECK(r.template_ids == ref["template"].get<std::vector<std::int32_t>>());
  CHECK(r.reply_ids == ref["reply"].get<std::vector<std::int32_t>>());
  CHECK(r.template_ids.size() <= 50);
  CHECK(r.reply_ids.size() <= 150);
  MESSAGE("template (" << r.template_ids.size() << " tokens): " << r.template_text);
  MESSAGE("reply (" << r.reply_ids.size() << " tokens): " << r.text);
}

TEST_CASE("responder: the prompt text and decoded texts for a fixture dialog") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const Bundle bundle = Bundle::open(f.bundle);
  const auto gpt2 = bundle_tokenizer(bundle, "gpt2");
  const Responder responder = Responder::load(bundle, ecr::test::gpt2_responder());
  CHECK(responder.has_review_entities());
  CHECK(responder.knowledge_relations() ==
        std::vector<std::string>{"starring", "writer", "productionCompany", "director", "musicComposer"});

  const Response r = responder.respond(fixture_dialog(), fixture_recommendation());
  REQUIRE(r.items.size() == 1);
  CHECK(r.items[0].id == 0);
  std::vector<std::int32_t> written = gpt2->encode("System:");
  written.insert(written.end(), r.template_ids.begin(), r.template_ids.end());
  CHECK(r.template_text == template_from_decoded(gpt2->decode(written)));
  CHECK(r.first_sentence == fill_template(r.template_text, std::vector<std::string>{"The Matrix (1999)"}));
  CHECK(r.review_entities == std::vector<std::string>{"Virtual reality", "Keanu Reeves", "Kung fu", "Philosophy"});
  CHECK(r.prompt_text ==
        "Movie Name: The Matrix (1999)<|endoftext|>"
        "Related Entities: Virtual reality, Keanu Reeves, Kung fu, Philosophy<|endoftext|>"
        "Related Knowledge from KG: The Matrix (1999)'s starring is Keanu Reeves, "
        "The Matrix (1999)'s writer is Lana Wachowski<|endoftext|>"
        "First Sentence: " + r.first_sentence + "<|endoftext|>");
  CHECK(r.prompt_ids == generator_prompt_ids(*gpt2, r.prompt_text, 149, kEos));
  CHECK(r.text == clean_decoded(gpt2->decode(r.reply_ids)));

  // Two items in the reply: both named, knowledge and entities pooled.
  ResponderOptions two = ecr::test::gpt2_responder();
  two.items_in_reply = 2;
  const Response both = Responder::load(bundle, two).respond(fixture_dialog(), fixture_recommendation());
  CHECK(both.template_ids == r.template_ids);
  CHECK(both.first_sentence == fill_template(r.template_text, std::vector<std::string>{"The Matrix (1999)", "Speed (1994)"}));
  CHECK(both.prompt_text.starts_with(
      "Movie Name: The Matrix (1999), Speed (1994)<|endoftext|>"
      "Related Entities: Virtual reality, Bus, Keanu Reeves, Kung fu<|endoftext|>"
      "Related Knowledge from KG: The Matrix (1999)'s starring is Keanu Reeves, "
      "Speed (1994)'s starring is Keanu Reeves<|endoftext|>First Sentence: "));

  // A short prompt limit keeps that many tokens, then eos.
  ResponderOptions cut = ecr::test::gpt2_responder();
  cut.prompt_max_tokens = 20;
  const Response shortened = Responder::load(bundle, cut).respond(fixture_dialog(), fixture_recommendation());
  REQUIRE(shortened.prompt_ids.size() == 21);
  CHECK(std::equal(shortened.prompt_ids.begin(), shortened.prompt_ids.end() - 1, r.prompt_ids.begin()));
  CHECK(shortened.prompt_ids.back() == kEos);

  // A seed samples the knowledge instead; the same seed, the same choice.
  ResponderOptions seeded = ecr::test::gpt2_responder();
  seeded.knowledge_seed = 3;
  const Responder sampler = Responder::load(bundle, seeded);
  const Response s1 = sampler.respond(fixture_dialog(), fixture_recommendation());
  const Response s2 = sampler.respond(fixture_dialog(), fixture_recommendation());
  CHECK(s1.prompt_text == s2.prompt_text);
  CHECK(s1.knowledge.size() == 2);
  CHECK(s1.review_entities.size() == 4);
}

TEST_CASE("responder: streaming and concurrent requests give the same reply") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const Responder responder = Responder::load(f.bundle, ecr::test::gpt2_responder());
  const Dialog dialog = fixture_dialog();
  const Recommendation rec = fixture_recommendation();
  const Response plain = responder.respond(dialog, rec);

  std::string streamed;
  std::size_t pieces = 0;
  const Response r = responder.respond(dialog, rec, [&](std::string_view piece) {
    CHECK(is_valid_utf8(piece));
    streamed += piece;
    ++pieces;
    return true;
  });
  CHECK(streamed == r.text);
  CHECK(r.reply_ids == plain.reply_ids);
  MESSAGE(pieces << " pieces");

  // Stopping after the first piece ends decoding early.
  const Response stopped = responder.respond(dialog, rec, [](std::string_view) { return false; });
  CHECK(stopped.reply_ids.size() <= plain.reply_ids.size());
  CHECK(std::equal(stopped.reply_ids.begin(), stopped.reply_ids.end(), plain.reply_ids.begin()));

  std::vector<Response> results(4);
  std::vector<std::thread> threads;
  for (auto& out : results) threads.emplace_back([&] { out = responder.respond(dialog, rec); });
  for (auto& t : threads) t.join();
  for (const Response& other : results) {
    CHECK(other.template_ids == plain.template_ids);
    CHECK(other.reply_ids == plain.reply_ids);
    CHECK(other.text == plain.text);
  }
}

TEST_CASE("responder: respond_batch gives each dialog its one-by-one greedy reply") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const Responder responder = Responder::load(f.bundle, ecr::test::gpt2_responder());
  // Dialogs of different lengths (so prompts of different lengths) and different items.
  Recommendation speed_first = fixture_recommendation();
  std::swap(speed_first.items[0], speed_first.items[1]);
  const std::vector<Dialog> dialogs = {
      fixture_dialog(), Dialog::parse(R"J({"turns": [{"role": "user", "text": "Any action movie?"}]})J"),
      fixture_dialog()};
  const std::vector<Recommendation> recs = {fixture_recommendation(), fixture_recommendation(), speed_first};

  std::vector<std::string> streamed(dialogs.size());
  std::vector<ReplyStream> streams;
  for (auto& text : streamed)
    streams.push_back([&text](std::string_view piece) {
      text += piece;
      return true;
    });
  const std::vector<Response> batch = responder.respond_batch(dialogs, recs, streams);
  REQUIRE(batch.size() == dialogs.size());
  for (std::size_t i = 0; i < dialogs.size(); ++i) {
    CAPTURE(i);
    const Response alone = responder.respond(dialogs[i], recs[i]);
    CHECK(batch[i].template_ids == alone.template_ids);
    CHECK(batch[i].prompt_ids == alone.prompt_ids);
    CHECK(batch[i].reply_ids == alone.reply_ids);
    CHECK(batch[i].reply_stop == alone.reply_stop);
    CHECK(batch[i].text == alone.text);
    CHECK(batch[i].items.size() == alone.items.size());
    CHECK(streamed[i] == batch[i].text);
  }
  CHECK(batch[0].reply_ids != batch[1].reply_ids);  // the replies are each dialog's own

  // A stream that stops its reply after the first piece leaves the others as they were.
  std::vector<ReplyStream> stop_first = {[](std::string_view) { return false; }, {}, {}};
  const std::vector<Response> cut = responder.respond_batch(dialogs, recs, stop_first);
  CHECK(cut[0].reply_stop == lm::StopReason::callback);
  CHECK(cut[0].reply_ids.size() < batch[0].reply_ids.size());
  CHECK(std::equal(cut[0].reply_ids.begin(), cut[0].reply_ids.end(), batch[0].reply_ids.begin()));
  CHECK(cut[1].reply_ids == batch[1].reply_ids);
  CHECK(cut[2].reply_ids == batch[2].reply_ids);

  // Without streams; spans that do not pair up and a bad dialog are InputErrors before any decoding.
  CHECK(responder.respond_batch(dialogs, recs)[2].reply_ids == batch[2].reply_ids);
  CHECK_THROWS_AS(responder.respond_batch(dialogs, std::span(recs).first(2)), InputError);
  CHECK_THROWS_AS(responder.respond_batch(dialogs, recs, std::span(streams).first(1)), InputError);
  const std::vector<Dialog> with_empty = {fixture_dialog(), Dialog{}};
  CHECK_THROWS_AS(responder.respond_batch(with_empty, std::span(recs).first(2)), InputError);
}

TEST_CASE("responder: relation lists from options or the bundle, and typed errors") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  const auto f = test::responder_fixture();
  const Bundle bundle = Bundle::open(f.bundle);

  ResponderOptions company = ecr::test::gpt2_responder();
  company.knowledge_relations = {"productionCompany"};
  CHECK(texts(Responder::load(bundle, company).respond(fixture_dialog(), fixture_recommendation()).knowledge) ==
        std::vector<std::string>{"The Matrix (1999)'s productionCompany is Warner Bros."});
  ResponderOptions unknown = ecr::test::gpt2_responder();
  unknown.knowledge_relations = {"cinematography"};
  CHECK_THROWS_AS(Responder::load(bundle, unknown), ConfigError);

  // The bundle's own list (components.generator.knowledge_relations).
  const auto rewrite = [&](const nlohmann::json& relations, const std::string& name) {
    nlohmann::json meta = bundle.metadata();
    meta["components"]["generator"]["knowledge_relations"] = relations;
    BundleWriter w(meta);
    for (const TensorInfo& t : bundle.tensors()) w.add(t.name, bundle.tensor(t.name));
    const fs::path path = temp_dir("responder_relations_" + name) / "model.ecr";
    w.write(path);
    return Bundle::open(path);
  };
  const Responder directors = Responder::load(rewrite({"director"}, "director"), ecr::test::gpt2_responder());
  CHECK(directors.knowledge_relations() == std::vector<std::string>{"director"});
  CHECK(texts(directors.respond(fixture_dialog(), fixture_recommendation()).knowledge) ==
        std::vector<std::string>{"The Matrix (1999)'s director is Lana Wachowski",
                                 "The Matrix (1999)'s director is Lilly Wachowski"});
  CHECK_THROWS_AS(Responder::load(rewrite({"cinematography"}, "unknown"), ecr::test::gpt2_responder()), ConfigError);
  CHECK_THROWS_AS(Responder::load(rewrite("director", "not_a_list"), ecr::test::gpt2_responder()), ConfigError);

  ResponderOptions no_conv = ecr::test::gpt2_responder();
  no_conv.components.conv_prompt = "nope";
  CHECK_THROWS_AS(Responder::load(bundle, no_conv), ConfigError);
  ResponderOptions rec_as_conv = ecr::test::gpt2_responder();
  rec_as_conv.components.conv_prompt = "rec_prompt";
  CHECK_THROWS_AS(Responder::load(bundle, rec_as_conv), ConfigError);

  const Responder responder = Responder::load(bundle, ecr::test::gpt2_responder());
  CHECK_THROWS_AS(responder.respond(fixture_dialog(), Recommendation{}), InputError);
  CHECK_THROWS_AS(responder.respond(Dialog{}, fixture_recommendation()), InputError);
  Dialog bad = fixture_dialog();
  bad.turns[0].entities = {99};
  CHECK_THROWS_AS(responder.respond(bad, fixture_recommendation()), InputError);
  Recommendation nameless;
  nameless.items = {{99, "", 1.0f}};
  CHECK_THROWS_AS(responder.respond(fixture_dialog(), nameless), InputError);
  Recommendation outside;
  outside.items = {{99, "Heat (1995)", 1.0f}};  // not a KG entity, but named: no knowledge
  const Response heat = responder.respond(fixture_dialog(), outside);
  CHECK(heat.prompt_text.starts_with(
      "Movie Name: Heat (1995)<|endoftext|>Related Entities: None<|endoftext|>Related Knowledge from KG: None"));
}
