// What the recommend benchmarks share: `--key value` options and the dialog they time.
#pragma once

#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include "ecr/dialog.hpp"

namespace ecr::bench {

// `--key value` pairs; std::invalid_argument names an option outside `known` or one without a
// value.
inline std::map<std::string, std::string> parse_options(int argc, char** argv, const std::set<std::string>& known) {
  std::map<std::string, std::string> options;
  for (int i = 1; i < argc; i += 2) {
    const std::string key = argv[i];
    if (!known.count(key) || i + 1 >= argc) throw std::invalid_argument("unknown option or missing value: " + key);
    options[key] = argv[i + 1];
  }
  return options;
}

inline int int_option(const std::map<std::string, std::string>& options, const std::string& key, int fallback) {
  const auto it = options.find(key);
  return it == options.end() ? fallback : std::stoi(it->second);
}

// The dialog file the benchmark times (the README's dialog format).
inline Dialog read_dialog(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read dialog " + path);
  return Dialog::parse(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
}

}  // namespace ecr::bench
