// The Responder's LLM generator (src/pipeline/llm_prompt.hpp): a random-weight Llama GGUF file with
// a byte-level tokenizer and a ChatML template (tools/make_llama_fixture.py --chat) writes the
// reply on the tiny responder bundle, checked against lm::generate on the chat prompt built
// independently here; then SmolLM2 on real dialogs when it is installed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <regex>

#include <nlohmann/json.hpp>

#include "ecr/default_bundle.hpp"
#include "ecr/io/gguf.hpp"
#include "ecr/models/llama.hpp"
#include "ecr/recommender.hpp"
#include "ecr/responder.hpp"
#include "ecr/text/chat_template.hpp"
#include "ecr/text/gguf_tokenizer.hpp"
#include "pipeline/llm_prompt.hpp"
#include "responder_fixture.hpp"
#include "gguf_support.hpp"
#include "support.hpp"

using namespace ecr;
using namespace ecr::test;

namespace {

fs::path llama_fixture(const std::string& name, const std::string& options) {
  const fs::path path = temp_dir("responder_llm_" + name) / (name + ".gguf");
  ecr::test::run_tool(fmt::format("make_llama_fixture --out '{}' {}", path.string(), options));
  return path;
}

fs::path chat_fixture() { return llama_fixture("chat", "--chat --context 512 --seed 5"); }

// $name set to `value` (or unset) while in scope.
struct EnvVar {
  std::string name;
  std::optional<std::string> old;
  EnvVar(std::string n, const std::optional<std::string>& value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) old = v;
    if (value)
      ::setenv(name.c_str(), value->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
  ~EnvVar() {
    if (old)
      ::setenv(name.c_str(), old->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};

Dialog sad_dialog() {
  return Dialog::parse(R"J({"turns": [
    {"role": "system", "text": "Hello! What do you like to watch?"},
    {"role": "user", "text": "I loved Speed (1994), but today I feel sad.", "entities": [1]}]})J");
}

Recommendation matrix_recommendation() {
  Recommendation r;
  r.items = {{0, "The Matrix (1999)", 2.0f}};
  r.user_emotions.ids = {4, 0, kPadEmotion};  // negative, like
  r.user_emotions.probs = {0.7f, 0.2f, 0.f};
  return r;
}

ResponderOptions llm_options(const fs::path& gguf) {
  ResponderOptions o;
  o.generator = ReplyGenerator::llm;
  o.llm_path = gguf;
  o.llm_generation.max_new_tokens = 24;
  return o;
}

}  // namespace

TEST_CASE("responder llm: the reply is lm::generate's greedy tokens on the chat prompt it builds") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  ECR_REQUIRE_GGUF_PACKAGE();
  const auto f = responder_fixture();
  const fs::path gguf_path = chat_fixture();
  const Responder responder = Responder::load(f.bundle, llm_options(gguf_path));
  CHECK(responder.generator() == ReplyGenerator::llm);
  const Response r = responder.respond(sad_dialog(), matrix_recommendation());
  CHECK(r.generator == ReplyGenerator::llm);
  REQUIRE(r.items.size() == 1);
  CHECK(r.items[0].id == 0);
  CHECK(!r.knowledge.empty());
  CHECK(r.template_text.empty());  // the LLM writes no template

  // The same prompt, built here from the model's own file.
  const gguf::File file = gguf::File::open(gguf_path);
  const auto tokenizer = text::tokenizer_from_gguf(file);
  const auto chat = text::ChatTemplate::from_gguf(file);
  responder::LlmPromptFacts facts;
  facts.emotions = {"negative", "like"};
  facts.movies = {"The Matrix (1999)"};
  facts.knowledge = r.knowledge;
  facts.review_entities = r.review_entities;
  facts.turns = {{"assistant", "Hello! What do you like to watch?"},
                 {"user", "I loved Speed (1994), but today I feel sad."}};
  const auto messages = responder::llm_prompt_messages(facts);
  REQUIRE(messages.size() == 2);  // system, then the dialog from its first user turn
  CHECK(messages[0].role == "system");
  CHECK(messages[0].content.find("sad") != std::string::npos);
  CHECK(messages[0].content.find("The Matrix (1999)") != std::string::npos);
  CHECK(messages[1].content == "I loved Speed (1994), but today I feel sad.");
  const std::string opening = responder::llm_reply_opening(facts);
  CHECK(opening.find("The Matrix (1999)") != std::string::npos);
  CHECK(r.prompt_text == chat.render(messages, true) + opening);

  std::vector<std::int32_t> prompt = text::encode_chat(*tokenizer, chat, messages, true);
  for (std::int32_t id : tokenizer->encode(opening)) prompt.push_back(id);
  CHECK(r.prompt_ids == prompt);
  lm::GenerateOptions greedy;
  greedy.max_new_tokens = 24;
  greedy.repetition_penalty = 1.1f;
  greedy.stop_tokens = text::end_of_turn_tokens(*tokenizer);
  greedy.min_new_tokens = ResponderOptions().llm_generation.min_new_tokens;
  const LlamaModel model = LlamaModel::load(file);
  const lm::Generation expected = lm::generate(model, prompt, greedy);
  // Past half the budget (and min_new_tokens) the reply stops after the first token that ends a
  // sentence: ., ! or ? last (spaces, quotes and brackets after it aside), not an initial's period.
  std::vector<std::int32_t> wanted = expected.tokens;
  const auto wrap_up = static_cast<std::size_t>(std::max<std::int64_t>(greedy.min_new_tokens, greedy.max_new_tokens / 2));
  for (std::size_t i = wrap_up - 1; i < expected.tokens.size(); ++i) {
    std::string said = tokenizer->decode(std::span(expected.tokens).first(i + 1));
    while (!said.empty() && std::string_view(" \"')").find(said.back()) != std::string_view::npos) said.pop_back();
    const std::size_t n = said.size();
    const bool initial = n >= 2 && std::isupper(static_cast<unsigned char>(said[n - 2])) && (n == 2 || said[n - 3] == ' ');
    if (n > 0 && (said.back() == '!' || said.back() == '?' || (said.back() == '.' && !initial))) {
      wanted.resize(i + 1);
      break;
    }
  }
  CHECK(r.reply_ids == wanted);
  CHECK(r.reply_ids.size() >= std::min<std::size_t>(wrap_up, expected.tokens.size()));
  CHECK(r.text.rfind(opening, 0) == 0);  // the reply opens with the title

  // Gpt2 stays selectable on the same bundle, whatever is installed.
  ResponderOptions gpt2 = llm_options(gguf_path);
  gpt2.generator = ReplyGenerator::gpt2;
  const Responder old = Responder::load(f.bundle, gpt2);
  CHECK(old.generator() == ReplyGenerator::gpt2);
  const Response g = old.respond(sad_dialog(), matrix_recommendation());
  CHECK(g.generator == ReplyGenerator::gpt2);
  CHECK(!g.template_text.empty());
  CHECK(g.prompt_text.find("Movie Name: The Matrix (1999)") != std::string::npos);
}

TEST_CASE("responder llm: respond_batch gives each dialog its one-by-one greedy reply") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  ECR_REQUIRE_GGUF_PACKAGE();
  const auto f = responder_fixture();
  const Responder responder = Responder::load(f.bundle, llm_options(chat_fixture()));
  Recommendation speed_first = matrix_recommendation();
  speed_first.items = {{1, "Speed (1994)", 2.0f}, {0, "The Matrix (1999)", 1.0f}};
  Dialog longer = sad_dialog();
  longer.add_turn({Role::system, "Have you seen Speed (1994)?", {1}, {}});
  longer.add_turn({Role::user, "No, is it good?", {}, {}});
  const std::vector<Dialog> dialogs = {sad_dialog(), longer};
  const std::vector<Recommendation> recs = {matrix_recommendation(), speed_first};
  std::vector<std::string> streamed(2);
  const std::vector<ReplyStream> streams = {[&](std::string_view p) { return streamed[0] += p, true; },
                                            [&](std::string_view p) { return streamed[1] += p, true; }};
  const std::vector<Response> batch = responder.respond_batch(dialogs, recs, streams);
  REQUIRE(batch.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    const Response alone = responder.respond(dialogs[i], recs[i]);
    CHECK(batch[i].generator == ReplyGenerator::llm);
    CHECK(batch[i].prompt_ids == alone.prompt_ids);
    CHECK(batch[i].reply_ids == alone.reply_ids);
    CHECK(batch[i].reply_stop == alone.reply_stop);
    CHECK(batch[i].text == alone.text);
    CHECK(streamed[i] == batch[i].text);
  }
  CHECK(batch[0].prompt_ids != batch[1].prompt_ids);
}

TEST_CASE("responder llm: llm_lora applies LoRA adapters to the LLM at load, and a bad one fails the load") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  ECR_REQUIRE_GGUF_PACKAGE();
  const auto f = responder_fixture();
  const fs::path gguf_path = chat_fixture();
  const fs::path adapter = temp_dir("responder_llm_lora") / "adapter.gguf";
  ecr::test::run_tool(fmt::format("make_lora_fixture --gguf '{}' --rank 8 --alpha 16 --seed 3", adapter.string()));
  ResponderOptions options = llm_options(gguf_path);
  options.llm_lora = {{adapter, 0.7f}};
  options.llm_generation.min_new_tokens = 0;
  const Responder responder = Responder::load(f.bundle, options);
  const Response r = responder.respond(sad_dialog(), matrix_recommendation());
  // The reply is what the adapted model decodes from the same prompt.
  const LoraSpec lora[] = {{adapter, 0.7f}};
  const LlamaModel model = LlamaModel::load(gguf::File::open(gguf_path), nullptr, lora);
  CHECK(model.lora_terms() == 5);
  const auto tokenizer = text::tokenizer_from_gguf(gguf::File::open(gguf_path));
  lm::GenerateOptions greedy;
  greedy.max_new_tokens = 24;
  greedy.repetition_penalty = 1.1f;
  greedy.stop_tokens = text::end_of_turn_tokens(*tokenizer);
  // The reply ends at a sentence end past half the budget: a prefix of the plain greedy decoding.
  const std::vector<std::int32_t> plain = lm::generate(model, r.prompt_ids, greedy).tokens;
  REQUIRE(!r.reply_ids.empty());
  REQUIRE(r.reply_ids.size() <= plain.size());
  CHECK(std::equal(r.reply_ids.begin(), r.reply_ids.end(), plain.begin()));

  ResponderOptions bad = llm_options(gguf_path);
  bad.llm_lora = {{gguf_path, 1.0f}};  // a model, not an adapter
  check_refused<FormatError>([&] { Responder::load(f.bundle, bad); }, {"chat.gguf", "not a LoRA adapter"});
  ResponderOptions gpt2 = options;
  gpt2.generator = ReplyGenerator::gpt2;
  check_refused<ConfigError>([&] { Responder::load(f.bundle, gpt2); }, {"adapter.gguf", "llm generator"});
}

TEST_CASE("responder llm: streamed pieces add up to the reply, and the end of turn is no text") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  ECR_REQUIRE_GGUF_PACKAGE();
  const auto f = responder_fixture();
  const fs::path gguf_path = chat_fixture();
  const Responder responder = Responder::load(f.bundle, llm_options(gguf_path));
  std::string streamed;
  const Response r = responder.respond(sad_dialog(), matrix_recommendation(), [&](std::string_view piece) {
    streamed += piece;
    return true;
  });
  CHECK(streamed == r.text);
  REQUIRE(r.reply_ids.size() > 4);

  // A turn that ends: the fifth new token made the end of turn (random weights never choose
  // <|im_end|> reliably). It ends the ids and is left out of the text.
  ResponderOptions ending = llm_options(gguf_path);
  const std::int32_t end = r.reply_ids[4];
  ending.llm_generation.stop_tokens = {end};
  ending.llm_generation.min_new_tokens = 0;  // the end may come at once
  const Responder ends = Responder::load(f.bundle, ending);
  std::string pieces;
  const Response e = ends.respond(sad_dialog(), matrix_recommendation(), [&](std::string_view piece) {
    pieces += piece;
    return true;
  });
  REQUIRE(!e.reply_ids.empty());
  CHECK(e.reply_ids.back() == end);
  CHECK(std::count(e.reply_ids.begin(), e.reply_ids.end(), end) == 1);
  CHECK(pieces == e.text);
  const gguf::File file = gguf::File::open(gguf_path);
  const auto tokenizer = text::tokenizer_from_gguf(file);
  const std::string opening = responder::llm_reply_opening([&] {
    responder::LlmPromptFacts facts;
    facts.emotions = {"negative", "like"};  // matrix_recommendation's: the opening comforts first
    facts.movies = {"The Matrix (1999)"};
    facts.knowledge = e.knowledge;
    return facts;
  }());
  std::vector<std::int32_t> said = tokenizer->encode(opening);
  said.insert(said.end(), e.reply_ids.begin(), e.reply_ids.end() - 1);
  const std::string without_end = tokenizer->decode(said);
  // The text is the tokens before the end of turn (the final strip aside), not the end's bytes.
  CHECK(without_end.rfind(e.text, 0) == 0);

  // min_new_tokens holds the end of turn back: not among the first 8 tokens, though the model
  // chose it fifth above.
  ResponderOptions later = ending;
  later.llm_generation.min_new_tokens = 8;
  const Response l = Responder::load(f.bundle, later).respond(sad_dialog(), matrix_recommendation());
  REQUIRE(l.reply_ids.size() >= 8);
  CHECK(std::find(l.reply_ids.begin(), l.reply_ids.begin() + 8, end) == l.reply_ids.begin() + 8);

  // The real end-of-turn token is never text: its spelling cannot appear in a reply.
  CHECK(r.text.find("<|im_end|>") == std::string::npos);
}

TEST_CASE("responder llm: a bad --llm is a typed error at load, and automatic picks the llm only when one is found") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  ECR_REQUIRE_GGUF_PACKAGE();
  const auto f = responder_fixture();
  const fs::path gguf_path = chat_fixture();

  CHECK_THROWS_AS(Responder::load(f.bundle, llm_options(temp_dir("responder_llm_none") / "missing.gguf")), IoError);
  check_refused<Error>([&] { Responder::load(f.bundle, llm_options(llama_fixture("arch", "--chat --break arch"))); },
                {"llama"});
  // A file that is not GGUF at all.
  const fs::path text_file = temp_dir("responder_llm_text") / "not.gguf";
  std::ofstream(text_file) << "not a gguf file";
  CHECK_THROWS_AS(Responder::load(f.bundle, llm_options(text_file)), FormatError);
  // A Llama file without a tokenizer.
  CHECK_THROWS_AS(Responder::load(f.bundle, llm_options(llama_fixture("plain", ""))), FormatError);
  CHECK_THROWS_AS(parse_reply_generator("gpt3"), InputError);

  ResponderOptions automatic;  // generator automatic, no file named
  {
    const EnvVar env("ECR_LLM", gguf_path.string());
    CHECK(Responder::load(f.bundle, automatic).generator() == ReplyGenerator::llm);
    ResponderOptions gpt2;
    gpt2.generator = ReplyGenerator::gpt2;
    CHECK(Responder::load(f.bundle, gpt2).generator() == ReplyGenerator::gpt2);
  }
  {
    const EnvVar env("ECR_LLM", std::nullopt);
    const auto found = default_llm_path();
    CHECK(Responder::load(f.bundle, automatic).generator() == (found ? ReplyGenerator::llm : ReplyGenerator::gpt2));
  }
  {
    const EnvVar env("ECR_LLM", (temp_dir("responder_llm_none") / "missing.gguf").string());
    CHECK_THROWS_AS(Responder::load(f.bundle, automatic), ConfigError);
  }
}

TEST_CASE("responder llm: ecr respond --json names the generator, the items and the facts") {
  ECR_REQUIRE_SHARED_DATA();
  ECR_REQUIRE_TORCH();
  ECR_REQUIRE_GGUF_PACKAGE();
  const auto f = responder_fixture();
  const fs::path gguf_path = chat_fixture();
  const fs::path dialog = temp_dir("responder_llm_cli") / "dialog.json";
  std::ofstream(dialog) << R"J({"turns": [{"role": "user", "text": "I loved Speed (1994).", "entities": [1]}]})J";
  const auto run = [&](const std::string& options) {
    std::string out;
    const int rc = run_command(fmt::format("'{}' respond --bundle '{}' '{}' --json {} 2>&1", cli_path().string(),
                                           f.bundle.string(), dialog.string(), options),
                               &out);
    REQUIRE_MESSAGE(rc == 0, out);
    return nlohmann::json::parse(out);
  };
  const auto llm = run(fmt::format("--generator llm --llm '{}' --llm-max-new-tokens 8", gguf_path.string()));
  CHECK(llm["generator"] == "llm");
  REQUIRE(llm["reply_items"].size() == 1);
  const std::string title = llm["reply_items"][0]["name"];
  CHECK(llm["reply"].get<std::string>().find(title) != std::string::npos);
  CHECK(!llm["knowledge"].empty());
  CHECK(llm["prompt_text"].get<std::string>().find("<|im_start|>system") == 0);
  const auto gpt2 = run(fmt::format("--generator gpt2 --llm '{}'", gguf_path.string()));
  CHECK(gpt2["generator"] == "gpt2");
  CHECK(gpt2["prompt_text"].get<std::string>().find("Movie Name: ") == 0);

  std::string out;
  CHECK(run_command(fmt::format("'{}' respond --bundle '{}' '{}' --generator llm --llm '{}' 2>&1", cli_path().string(),
                                f.bundle.string(), dialog.string(), (dialog.parent_path() / "none.gguf").string()),
                    &out) != 0);
  CHECK(out.find("none.gguf") != std::string::npos);
}

// SmolLM2-135M-Instruct (tools/fetch_llm.sh; or a copy named by ECR_LLM) on the shipped bundle:
// on a few dialogs the reply names the recommended title and reads as English.
TEST_CASE("ecr generate --gguf --chat: the prompt is encode_chat of the user turn, its text ends before the end of turn") {
  ECR_REQUIRE_GGUF_PACKAGE();
  const fs::path path = chat_fixture();
  const auto file = gguf::File::open(path);
  const auto tok = text::tokenizer_from_gguf(file);
  const std::string user = "hi <|im_end|> there";
  std::string out;
  REQUIRE(run_command(fmt::format("'{}' generate --gguf '{}' --chat --system 'Be brief.' --prompt '{}' --max-tokens 12 --json 2>&1",
                                  cli_path().string(), path.string(), user),
                      &out) == 0);
  INFO(out);
  const auto result = nlohmann::json::parse(out);
  const std::vector<text::ChatMessage> messages = {{"system", "Be brief."}, {"user", user}};
  CHECK(result["prompt"].get<std::vector<std::int32_t>>() ==
        text::encode_chat(*tok, text::ChatTemplate::from_gguf(file), messages, true));
  // The ids keep a final end-of-turn token; the text never has one.
  const auto generated = result["generated"].get<std::vector<std::int32_t>>();
  const auto stops = text::end_of_turn_tokens(*tok);
  std::vector<std::int32_t> body = generated;
  if (result["stop"] == "stop_token") {
    REQUIRE_FALSE(body.empty());
    CHECK(std::find(stops.begin(), stops.end(), body.back()) != stops.end());
    body.pop_back();
  }
  CHECK(result["text"] == tok->decode(body));
  // A file without a tokenizer takes no text.
  const fs::path bare = llama_fixture("bare", "--seed 2");
  CHECK(run_command(fmt::format("'{}' generate --gguf '{}' --prompt hi 2>&1", cli_path().string(), bare.string()), &out) != 0);
  CHECK(out.find("--prompt-ids") != std::string::npos);
}

TEST_CASE("responder llm: SmolLM2 names the recommended title in English") {
  const auto llm = default_llm_path();
  if (!llm) {
    MESSAGE("skipped: no LLM installed (tools/fetch_llm.sh, or ECR_LLM=FILE.gguf)");
    return;
  }
  std::optional<fs::path> bundle;
  try {
    bundle = default_bundle_path();
  } catch (const ConfigError& e) {
    MESSAGE("skipped: no shipped bundle: " << e.what());
    return;
  }
  ResponderOptions options;
  options.generator = ReplyGenerator::llm;
  options.llm_path = *llm;
  Responder responder;
  try {
    responder = Responder::load(*bundle, options);
  } catch (const ConfigError& e) {  // a quantization this build has no kernel for
    MESSAGE("skipped: " << e.what());
    return;
  }
  const Recommender recommender = Recommender::load(responder.engine());
  const char* dialogs[] = {
      R"J({"turns": [{"role": "user", "text": "I loved Notting Hill (1999). I saw Sleepless in Seattle (1993) and I feel sad today."}]})J",
      R"J({"turns": [{"role": "system", "text": "Hi! What kind of movies do you like?"}, {"role": "user", "text": "I love scary movies, like The Shining (1980)."}]})J",
      R"J({"turns": [{"role": "user", "text": "Hello, I want a funny comedy tonight. I liked Superbad (2007)."}]})J"};
  const std::regex word("[A-Za-z']+");
  for (const char* text : dialogs) {
    const Dialog dialog = Dialog::parse(text);
    const Responder::Turn turn = Responder::converse(recommender, responder, dialog);
    const Response& r = turn.response;
    INFO(r.text);
    CHECK(r.generator == ReplyGenerator::llm);
    REQUIRE(!r.items.empty());
    const std::string title(responder.graph().entity_name(r.items[0].id));
    CHECK(r.text.find(title) != std::string::npos);
    // English: most of it is ASCII words.
    std::size_t letters = 0;
    for (auto it = std::sregex_iterator(r.text.begin(), r.text.end(), word); it != std::sregex_iterator(); ++it)
      letters += it->length();
    CHECK(letters * 10 >= r.text.size() * 7);
    CHECK(r.text.size() > title.size() + 20);
  }
}
