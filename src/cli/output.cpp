#include "output.hpp"

#include <fmt/format.h>

namespace ecr::cli {

std::string escape_controls_in_json(const std::string& dumped) {
  std::string out;
  out.reserve(dumped.size());
  for (std::size_t i = 0; i < dumped.size(); ++i) {
    const auto c = static_cast<unsigned char>(dumped[i]);
    if (c == 0x7F) {
      out += "\\u007f";
    } else if (c == 0xC2 && i + 1 < dumped.size() && static_cast<unsigned char>(dumped[i + 1]) < 0xA0) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(dumped[++i]));  // U+0080..U+009F
    } else {
      out += dumped[i];
    }
  }
  return out;
}

}  // namespace ecr::cli
