// The text side of the Responder (docs/math.md sections 7 and 8), apart from the models so the
// tests can pin it byte for byte: how decoded tokens become a template or a reply, how the
// template's slots are filled, the generator's prompt text, and streaming decoded text.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ecr/responder.hpp"
#include "ecr/text/tokenizer.hpp"

namespace ecr::responder {

// Python's str.strip(): the whitespace of str.isspace() removed at both ends.
std::string_view strip(std::string_view text);

// ECR's and UniCRS's clean-up of a decoded generation (evaluate_conv.py): the texts "<pad>"
// and "<|endoftext|>" removed, then stripped.
std::string clean_decoded(std::string_view decoded);

// Section 7: the template is the cleaned decoding of "System:" + the new tokens, after its
// last "System: " (the whole of it when there is none), as ECR's merge.py takes it.
std::string template_from_decoded(std::string_view decoded);

// The template with every "<movie>" replaced by the names joined with ", ".
std::string fill_template(std::string_view template_text, std::span<const std::string> names);

// The name a KG entity has in the generator's knowledge triples: ECR reads KG neighbours with
// DBpedia.entity2name(flag=True), which drops everything from the first "(" ("John Williams
// (composer)" -> "John Williams"). A name that starts with "(" is kept whole.
std::string without_parenthetical(std::string_view name);

inline constexpr std::string_view kEndOfText = "<|endoftext|>";
inline constexpr std::string_view kNone = "None";

// Section 8's prompt text (dataset_emp.py, prepare_data_infer), every part ended by
// <|endoftext|>; an empty list reads "None":
//   Movie Name: {movies, ", "}<|endoftext|>Related Entities: {entities, ", "}<|endoftext|>
//   Related Knowledge from KG: {triples, ", "}<|endoftext|>First Sentence: {sentence}<|endoftext|>
std::string generator_prompt_text(std::span<const std::string> movies, std::span<const std::string> review_entities,
                                  std::span<const KnowledgeTriple> knowledge, std::string_view first_sentence);

// The generator's input ids: the tokens of the prompt text before its final <|endoftext|>,
// the first `max_tokens` of them, then `eos` (ECR truncates the text's tokens, then appends eos).
std::vector<std::int32_t> generator_prompt_ids(const Tokenizer& tokenizer, std::string_view prompt_text,
                                               std::size_t max_tokens, std::int32_t eos);

// Streams a reply as it is decoded. Each token's arrival decodes the whole reply so far (ECR's
// clean-up included) and passes on what is new, holding back what a later token may still
// change: a trailing U+FFFD (the first bytes of a character split across tokens), trailing
// whitespace (the final strip removes it) and a trailing beginning of "<pad>" or
// "<|endoftext|>". So every piece is complete UTF-8 and the pieces, with finish(), add up to
// the final reply exactly, unless the sink stopped it: after returning false it hears no more.
// Whether `text` ends a sentence: ., ! or ? last (closing quotes and brackets and spaces after it
// aside), and not the period of an initial ("Michael B.").
bool ends_sentence(std::string_view text);

class ReplyTextStream {
 public:
  ReplyTextStream(const Tokenizer& tokenizer, ReplyStream sink) : tokenizer_(tokenizer), sink_(std::move(sink)) {}
  // Returns false when the sink asks to stop.
  bool push(std::int32_t token);
  // Passes on what is still held back of `reply` (the cleaned decoding of every token).
  void finish(std::string_view reply);

 private:
  bool emit(std::string_view text);
  const Tokenizer& tokenizer_;
  ReplyStream sink_;
  std::vector<std::int32_t> tokens_;
  std::string sent_;
  bool diverged_ = false;  // the cleaned text no longer extends what was sent (it cannot be taken back)
  bool stopped_ = false;   // the sink returned false
};

}  // namespace ecr::responder
