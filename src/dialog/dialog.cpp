// The Dialog type: its JSON form, ReDial records, and the merge of consecutive turns.
#include "ecr/dialog.hpp"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "ecr/core/error.hpp"
#include "ecr/core/json_depth.hpp"
#include "ecr/core/utf8.hpp"
#include "../kg/words.hpp"

namespace ecr {

using nlohmann::json;

std::optional<std::int32_t> emotion_id(std::string_view label) {
  for (std::size_t i = 0; i < kEmotionLabels.size(); ++i)
    if (kEmotionLabels[i] == label) return static_cast<std::int32_t>(i);
  return std::nullopt;
}

std::string_view role_name(Role role) { return role == Role::user ? "user" : "system"; }

void Dialog::add_turn(Turn turn) {
  if (turns.empty() || turns.back().role != turn.role) {
    turns.push_back(std::move(turn));
    return;
  }
  Turn& last = turns.back();
  last.text += ' ';
  last.text += turn.text;
  last.entities.insert(last.entities.end(), turn.entities.begin(), turn.entities.end());
  if (turn.emotions) {
    if (!last.emotions) {
      last.emotions = turn.emotions;
    } else {
      for (std::size_t i = 0; i < kEmotionLabels.size(); ++i)
        (*last.emotions)[i] = std::max((*last.emotions)[i], (*turn.emotions)[i]);
    }
  }
}

namespace {

std::string all_labels() {
  std::string out;
  for (auto l : kEmotionLabels) out += (out.empty() ? "" : ", ") + std::string(l);
  return out;
}

EmotionProbs parse_emotions(const json& j, const std::string& where) {
  if (!j.is_object()) fail<InputError>("{}: 'emotions' must be an object of label -> probability", where);
  EmotionProbs probs{};
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto id = emotion_id(it.key());
    if (!id) fail<InputError>("{}: unknown emotion label '{}' (expected one of {})", where, it.key(), all_labels());
    if (!it.value().is_number()) fail<InputError>("{}: emotion '{}': probability must be a number", where, it.key());
    const double p = it.value().get<double>();
    if (!(p >= 0.0 && p <= 1.0))
      fail<InputError>("{}: emotion '{}': probability {} is outside [0, 1]", where, it.key(), p);
    probs[static_cast<std::size_t>(*id)] = static_cast<float>(p);
  }
  return probs;
}

MovieMentions parse_mentions(const json& j, std::string_view where) {
  if (!j.is_object()) fail<InputError>("{}: 'movieMentions' must be an object of movie id -> title", where);
  MovieMentions out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.value().is_null()) continue;  // ReDial has titles it lost
    if (!it.value().is_string())
      fail<InputError>("{}: movieMentions '{}': the title must be a string", where, it.key());
    out.emplace(it.key(), it.value().get<std::string>());
  }
  return out;
}

std::string checked_text(const json& j, const std::string& where, const char* field) {
  if (!j.is_string()) fail<InputError>("{}: '{}' must be a string", where, field);
  std::string text = j.get<std::string>();
  if (auto bad = utf8_error_offset(text)) fail<InputError>("{}: '{}' is not valid UTF-8 (byte {})", where, field, *bad);
  return text;
}

// "#38" or "#x26" without the '#': the code point, or 0 when it is not a valid one.
std::uint32_t numeric_reference(std::string_view ref) {
  const bool hex = ref[0] == 'x' || ref[0] == 'X';
  const std::string_view digits = ref.substr(hex ? 1 : 0);
  if (digits.empty() || digits.size() > 6) return 0;
  std::uint32_t cp = 0;
  for (char c : digits) {
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (hex && c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (hex && c >= 'A' && c <= 'F') d = c - 'A' + 10;
    if (d < 0) return 0;
    cp = cp * (hex ? 16 : 10) + static_cast<std::uint32_t>(d);
  }
  return cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ? 0 : cp;
}

// Python's html.unescape for the entities chat text has: &amp; &lt; &gt; &quot; &#39; &apos;
// &nbsp; and numeric references.
std::string html_unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    const auto semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out.push_back('&');
      continue;
    }
    const std::string_view name = s.substr(i + 1, semi - i - 1);
    std::uint32_t cp = 0;
    if (name == "amp") cp = '&';
    else if (name == "lt") cp = '<';
    else if (name == "gt") cp = '>';
    else if (name == "quot") cp = '"';
    else if (name == "apos") cp = '\'';
    else if (name == "nbsp") cp = 0xA0;
    else if (name.size() > 1 && name[0] == '#') cp = numeric_reference(name.substr(1));
    if (cp == 0) {
      out.push_back('&');
      continue;
    }
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    i = semi;
  }
  return out;
}

}  // namespace

std::string redial_text(std::string_view text, const MovieMentions& mentions) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '@' && i + 1 < text.size() && text[i + 1] >= '0' && text[i + 1] <= '9') {
      std::size_t j = i + 1;
      while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
      if (auto it = mentions.find(text.substr(i + 1, j - i - 1)); it != mentions.end()) {
        out += kg_words::collapse_spaces(it->second);
        i = j - 1;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return html_unescape(kg_words::collapse_spaces(out));
}

Dialog Dialog::from_json(const json& j) {
  if (!j.is_object()) fail<InputError>("dialog: expected a JSON object with 'turns'");
  if (!j.contains("turns") || !j["turns"].is_array()) fail<InputError>("dialog: 'turns' must be an array of turns");
  if (j["turns"].empty()) fail<InputError>("dialog: it has no turns");
  Dialog d;
  if (j.contains("movieMentions")) d.movie_mentions = parse_mentions(j["movieMentions"], "dialog");
  std::size_t index = 0;
  for (const auto& t : j["turns"]) {
    const std::string where = fmt::format("dialog: turn {}", index++);
    if (!t.is_object()) fail<InputError>("{}: expected an object with 'role' and 'text'", where);
    Turn turn;
    if (!t.contains("role") || !t["role"].is_string())
      fail<InputError>("{}: 'role' must be \"user\" or \"system\"", where);
    const auto& role = t["role"].get_ref<const std::string&>();
    if (role == "user") turn.role = Role::user;
    else if (role == "system") turn.role = Role::system;
    else fail<InputError>("{}: 'role' must be \"user\" or \"system\", found {}", where, t["role"].dump());
    if (!t.contains("text")) fail<InputError>("{}: 'text' is missing", where);
    turn.text = checked_text(t["text"], where, "text");
    if (t.contains("entities")) {
      if (!t["entities"].is_array()) fail<InputError>("{}: 'entities' must be an array of entity ids", where);
      std::size_t k = 0;
      for (const auto& e : t["entities"]) {
        const bool valid = e.is_number_unsigned()  ? e.get<std::uint64_t>() <= std::numeric_limits<std::int64_t>::max()
                           : e.is_number_integer() ? e.get<std::int64_t>() >= 0
                                                   : false;
        if (!valid)
          fail<InputError>("{}: entities[{}] must be a non-negative integer id, found {}", where, k, e.dump());
        turn.entities.push_back(e.get<std::int64_t>());
        ++k;
      }
    }
    if (t.contains("emotions") && !t["emotions"].is_null()) turn.emotions = parse_emotions(t["emotions"], where);
    d.add_turn(std::move(turn));
  }
  return d;
}

Dialog Dialog::parse(std::string_view json_text) {
  if (json_text.size() > kMaxDialogBytes)
    fail<InputError>("dialog: {} bytes of JSON, more than the {} MiB a dialog may have", json_text.size(),
                     kMaxDialogBytes >> 20);
  if (json_depth(json_text) > kMaxJsonDepth)
    fail<InputError>("dialog: JSON nests arrays and objects deeper than {} levels", kMaxJsonDepth);
  // The parser takes a NUL for the end of the text, and would not read what follows.
  if (const auto nul = json_text.find('\0'); nul != std::string_view::npos)
    fail<InputError>("dialog: not valid JSON: a NUL byte at byte offset {}", nul);
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    fail<InputError>("dialog: not valid JSON: {}", printable(e.what()));
  }
  return from_json(j);
}

json Dialog::to_json() const {
  json turns_json = json::array();
  for (const auto& t : turns) {
    json tj = {{"role", role_name(t.role)}, {"text", t.text}};
    if (!t.entities.empty()) tj["entities"] = t.entities;
    if (t.emotions) {
      json e = json::object();
      for (std::size_t i = 0; i < kEmotionLabels.size(); ++i)
        if ((*t.emotions)[i] > 0.f) e[std::string(kEmotionLabels[i])] = (*t.emotions)[i];
      tj["emotions"] = e;
    }
    turns_json.push_back(std::move(tj));
  }
  json out = {{"turns", std::move(turns_json)}};
  if (!movie_mentions.empty()) out["movieMentions"] = movie_mentions;
  return out;
}

Dialog Dialog::from_redial(const json& record, const KnowledgeGraph* kg) {
  if (!record.is_object()) fail<InputError>("redial dialog: expected a JSON object");
  const std::string id = record.contains("conversationId") ? record["conversationId"].dump() : "?";
  const std::string label = fmt::format("redial dialog {}", id);
  if (!record.contains("messages") || !record["messages"].is_array() || record["messages"].empty())
    fail<InputError>("{}: 'messages' must be a non-empty array", label);
  if (!record.contains("initiatorWorkerId")) fail<InputError>("{}: 'initiatorWorkerId' is missing", label);
  const json& seeker = record["initiatorWorkerId"];
  Dialog d;
  if (record.contains("movieMentions") && !record["movieMentions"].is_null())
    d.movie_mentions = parse_mentions(record["movieMentions"], label);
  std::size_t index = 0;
  for (const auto& m : record["messages"]) {
    const std::string where = fmt::format("{}: message {}", label, index++);
    if (!m.is_object() || !m.contains("senderWorkerId"))
      fail<InputError>("{}: expected an object with 'senderWorkerId' and 'text'", where);
    Turn turn;
    turn.role = m["senderWorkerId"] == seeker ? Role::user : Role::system;
    if (!m.contains("text")) fail<InputError>("{}: 'text' is missing", where);
    turn.text = redial_text(checked_text(m["text"], where, "text"), d.movie_mentions);
    if (kg) {
      // Movies first, then the other entities, as ECR orders a message's mentions.
      for (const char* field : {m.contains("item") ? "item" : "movie", "entity"}) {
        if (!m.contains(field) || m[field].is_null()) continue;
        if (!m[field].is_array()) fail<InputError>("{}: '{}' must be an array of entity names", where, field);
        for (const auto& name : m[field])
          if (name.is_string())
            if (auto eid = kg->entity_id(name.get_ref<const std::string&>())) turn.entities.push_back(*eid);
      }
    }
    for (const char* field : {"emotions", "emotion"})
      if (m.contains(field) && !m[field].is_null()) {
        turn.emotions = parse_emotions(m[field], where);
        break;
      }
    d.add_turn(std::move(turn));
  }
  return d;
}

void Dialog::validate(const KnowledgeGraph& kg) const {
  for (std::size_t i = 0; i < turns.size(); ++i)
    for (std::size_t k = 0; k < turns[i].entities.size(); ++k) {
      const std::int64_t e = turns[i].entities[k];
      if (e < 0 || e >= kg.pad_entity())
        fail<InputError>("dialog: turn {}: entities[{}] = {} is not an entity of the knowledge graph (0..{})", i, k, e,
                         kg.pad_entity() - 1);
    }
}

}  // namespace ecr
