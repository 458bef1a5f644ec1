// What `ecr` prints: JSON that is safe on a terminal. dump() escapes C0 controls and the invalid
// UTF-8 is replaced; json_text() also writes DEL and the C1 controls (U+0080..U+009F, which
// some terminals obey) as \u escapes, so the text stays valid JSON with the same value.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace ecr::cli {

// DEL and C1 controls of dumped JSON as \u escapes.
std::string escape_controls_in_json(const std::string& dumped);

template <class Json>
std::string json_text(const Json& j, int indent = -1) {
  return escape_controls_in_json(j.dump(indent, ' ', false, Json::error_handler_t::replace));
}

}  // namespace ecr::cli
