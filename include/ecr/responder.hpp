// ecr::Responder: ECR's emotion-aligned, knowledge-grounded reply (docs/math.md sections 7 and 8).
//
// One request, top to bottom (Responder::respond):
//   dialog -> template: text encoder + conv prompt (UniCRS) -> backbone writes the first
//             sentence after "System:", with <movie> slots
//   items  -> names fill the slots -> knowledge: review entities of the items, KG triples on
//             the configured relations -> prompt text of section 8
//          -> generator (KV-cached decoding, streamed) -> reply.
// Inputs, as UniCRS's conv dataset and collator build them: the conv prompt reads the same
// RoBERTa prompt as the rec prompt (<s>, then the turns each ended by </s>, newest 199 tokens)
// and the same context entities (newest 32); the backbone reads the newest 198 GPT-2 context
// tokens followed by the 2 tokens of "System:" (200 in all, where docs/math.md section 7 reads 200 + 2).
// Text as ECR's code has it (src/pipeline/reply_text.hpp, retrieval.hpp): "Movie Name" keeps a
// title's "(1999)"; KG neighbours lose theirs; review entities keep theirs.
// The reply's writer may instead be an LLM (a Llama-architecture GGUF chat model, SmolLM2 by
// default): it skips the template and reads ECR's retrieval-augmented prompt through the model's
// chat template (src/pipeline/llm_prompt.hpp, docs/llm-replies.md).
// Like the Recommender it is immutable after load and serves many threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ecr/lm/generate.hpp"
#include "ecr/models/lora.hpp"
#include "ecr/recommender.hpp"

namespace ecr {

// As RecommenderOptions, the engine's options come first and apply to an Engine made by
// Responder::load(path or bundle).
// Who writes the reply: ECR's GPT-2 generator (section 8) or an LLM. automatic: the LLM when
// llm_path is given or default_llm_path() finds one (and the engine runs on the cpu), else GPT-2.
enum class ReplyGenerator { automatic, gpt2, llm };
// "auto", "gpt2", "llm"; parse_reply_generator is an InputError for another name.
std::string_view reply_generator_name(ReplyGenerator generator);
ReplyGenerator parse_reply_generator(std::string_view name);

struct ResponderOptions : EngineOptions {
  // Section 2 (UniCRS's conv inputs are the rec ones): GPT-2 context tokens, "System:"
  // included; RoBERTa prompt tokens, <s> included; context entities.
  std::size_t context_tokens = 200;
  std::size_t prompt_tokens = 200;
  std::size_t max_entities = kMaxContextEntities;
  // Section 7: the template decoder.
  std::int64_t template_max_new_tokens = 50;
  std::int64_t template_no_repeat_ngram = 3;
  // Section 8: the generator; every decoding option of the engine is available here (empty
  // stop_tokens: the generator's <|endoftext|>; an on_token set here sees every reply token).
  lm::GenerateOptions generation = [] {
    lm::GenerateOptions g;
    g.max_new_tokens = 150;
    g.no_repeat_ngram_size = 3;
    return g;
  }();
  std::size_t prompt_max_tokens = 149;  // the generator prompt's tokens, before the final eos
  std::size_t items_in_reply = 1;     // how many recommended items fill the reply
  std::size_t review_entities = 4;    // "Related Entities": at most this many
  std::size_t knowledge_triples = 2;  // "Related Knowledge from KG": at most this many
  // Relations whose one-hop neighbours count as knowledge; empty: the bundle's list (metadata
  // components.<generator>.knowledge_relations), else starring, writer, productionCompany,
  // director, musicComposer, those the KG has. A name matches a KG relation by its name, by the
  // display name of a DBpedia URI key, or by alias ("starring" is the ReDial KG's "star"); the
  // prompt writes the name given here. A name given here or by the bundle that the KG lacks is a
  // ConfigError at load.
  std::vector<std::string> knowledge_relations;
  // Knowledge choice: most frequent first (deterministic) unless a seed asks for sampling.
  std::optional<std::uint64_t> knowledge_seed;

  // The LLM generator, loaded once at load (cpu only) and shared by every request.
  ReplyGenerator generator = ReplyGenerator::automatic;
  std::filesystem::path llm_path;  // empty: default_llm_path()
  std::string chat_template;       // empty: the file's tokenizer.chat_template (else chatml, llama2...)
  // LoRA adapters over the LLM, each with its scale (models/lora.hpp; ECR[Llama 2-Chat] is Llama
  // 2-Chat with one), applied at load; errors name the adapter file.
  std::vector<LoraSpec> llm_lora;
  // Its decoding: greedy with a repetition penalty; a temperature > 0 samples with `seed`. Empty
  // stop_tokens: the model's end-of-turn tokens (text::end_of_turn_tokens). The end of turn waits
  // for min_new_tokens after the opening: a small model otherwise ends the reply right after the
  // opening's sentence, with nothing of its own (docs/llm-replies.md).
  lm::GenerateOptions llm_generation = [] {
    lm::GenerateOptions g;
    g.max_new_tokens = 120;
    g.min_new_tokens = 20;
    g.repetition_penalty = 1.1f;
    return g;
  }();
  std::size_t llm_dialog_turns = 4;    // the dialog's last turns the LLM reads
  std::size_t llm_knowledge = 6;       // KG facts in its prompt, at most
  std::size_t llm_review_entities = 3; // review entities in its prompt, at most
};

struct KnowledgeTriple {
  std::string movie, relation, entity;
  std::string text() const;  // "{movie}'s {relation} is {entity}"
};

struct Response {
  std::string text;          // the reply
  ReplyGenerator generator = ReplyGenerator::gpt2;  // who wrote it: gpt2 or llm
  std::string template_text; // first sentence with <movie> slots, as the backbone wrote it
  std::string first_sentence;  // the template with the items filled in
  std::vector<RecommendedItem> items;  // the items the reply names (items_in_reply, distinct)
  std::vector<std::string> review_entities;
  std::vector<KnowledgeTriple> knowledge;
  // The generator's prompt (section 8), byte for byte, its final <|endoftext|> included; for
  // the LLM, the chat prompt its template renders (a message's control-token spellings as typed).
  std::string prompt_text;
  TurnEmotions user_emotions;
  // Inputs and outputs as the models saw them, for debugging and the torch parity tests.
  std::vector<std::int32_t> template_input_ids;  // backbone: GPT-2 context, then "System:"
  std::vector<std::int32_t> conv_prompt_ids;     // text encoder: <s> + RoBERTa context
  std::vector<std::int32_t> conv_entities;       // the conv prompt's entities
  std::vector<std::int32_t> template_ids;        // backbone's new tokens (a final eos included)
  std::vector<std::int32_t> prompt_ids;          // generator input: <= prompt_max_tokens + eos
  std::vector<std::int32_t> reply_ids;           // generator's new tokens (a final eos / end of turn included)
  // Why the reply's decoding ended: its stop token, max_new_tokens, or the stream (or
  // GenerateOptions::on_token) asking to stop.
  lm::StopReason reply_stop = lm::StopReason::max_new_tokens;
};

// Called with each decoded piece of the reply as soon as it is known; return false to stop.
// Pieces are whole UTF-8 characters and add up to Response::text exactly: what a later token
// may still change (the first bytes of a split character, trailing spaces) waits for it.
using ReplyStream = std::function<bool(std::string_view piece)>;

class Responder {
 public:
  // Throws ConfigError / FormatError / ShapeError naming the bundle, component and tensor when
  // the backbone, text encoder, conv prompt, generator or KG are missing or do not fit together.
  // The review entities are optional: without them "Related Entities" reads "None".
  // The LLM, when chosen, loads here too: IoError / FormatError for a file that is not a readable
  // GGUF, ConfigError for one that is not a Llama-architecture model with a tokenizer, or for the
  // LLM on a device other than the cpu.
  static Responder load(const std::filesystem::path& bundle, ResponderOptions options = {});
  static Responder load(const Bundle& bundle, ResponderOptions options = {});
  // A view over a loaded engine: a Recommender made from the same engine shares its backbone,
  // text encoder and knowledge graph.
  static Responder load(const Engine& engine, ResponderOptions options = {});

  // The reply to `dialog` naming the recommendation's first items. Entities for the conv prompt
  // are the recommendation's analysed turns' (else the dialog's). InputError for a dialog without
  // turns or a recommendation without items.
  Response respond(const Dialog& dialog, const Recommendation& recommendation, const ReplyStream& stream = {}) const;
  // Several replies at once: reply i is respond(dialogs[i], recommendations[i], streams[i]), with
  // the template's and the reply's decoding steps of all of them run together through
  // lm::generate_batch (each weight matrix read once a step for the whole batch). Greedy replies
  // equal the one-by-one ones up to the float rounding that lm/generate.hpp describes. `streams`
  // is empty or one per dialog. On a CUDA engine, and for one dialog, the replies are written one
  // by one. InputError as respond(), or for spans of different lengths.
  std::vector<Response> respond_batch(std::span<const Dialog> dialogs, std::span<const Recommendation> recommendations,
                                      std::span<const ReplyStream> streams = {}) const;

  const ResponderOptions& options() const;
  const Engine& engine() const;
  const KnowledgeGraph& graph() const;
  // The knowledge relations in use, as the prompt names them.
  std::vector<std::string> knowledge_relations() const;
  bool has_review_entities() const;
  // The generator in use: gpt2 or llm (automatic resolved at load).
  ReplyGenerator generator() const;

  // Recommend, then respond, with a Recommender loaded from the same bundle.
  struct Turn {
    Recommendation recommendation;
    Response response;
  };
  static Turn converse(const Recommender& recommender, const Responder& responder, const Dialog& dialog,
                       const RecommendRequest& request = {}, const ReplyStream& stream = {});

  // The newest turns of `dialog` that decide what converse() computes: ecr::recent_turns measured
  // with this Responder's tokenizers against the larger of both models' limits (both loaded with
  // the same component names). For a long conversation, converse() on them gives what the whole
  // dialog gives at a cost that stops growing with its length; `ecr chat` sends every turn so.
  static Dialog recent_turns(const Recommender& recommender, const Responder& responder, const Dialog& dialog);

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace ecr
