// Nesting limit for JSON from outside (bundle metadata, dialogs, JSON lines). nlohmann's parser
// keeps its own stack, but copying, comparing and printing a value recurse once per level, so a
// document nested 100,000 levels deep parses and then overflows the stack. Readers check the
// depth first, with a scan that needs no recursion and no allocation.
#pragma once

#include <cstddef>
#include <string_view>

namespace ecr {

// ECR's own documents nest 5 levels at most (metadata.components.<name>.config.id2label).
inline constexpr std::size_t kMaxJsonDepth = 64;

// The deepest nesting of arrays and objects in `text` (brackets inside strings do not count);
// the scan stops as soon as it passes `limit`, so the result is at most limit + 1. It does not
// validate: the parser does that afterwards.
inline std::size_t json_depth(std::string_view text, std::size_t limit = kMaxJsonDepth) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character cannot end the string
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

}  // namespace ecr
