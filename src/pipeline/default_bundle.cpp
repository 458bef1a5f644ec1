#include "ecr/default_bundle.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <optional>
#include <string_view>
#include <cstdlib>
#include <string>
#include <system_error>

#include "ecr/core/error.hpp"

namespace ecr {

namespace {

namespace fs = std::filesystem;

// Any object of this file: dladdr() on it names the binary the library was linked into.
constexpr char kAnchor = 0;

// The folders of the binary holding this code (the ecr tool, a host, the Python module _ecr.so)
// and of the running executable: an install is found relative to them, so a moved prefix or a
// pip-installed package still finds its own model.
std::vector<fs::path> binary_dirs() {
  std::vector<fs::path> dirs;
  std::error_code ec;
  Dl_info info{};
  if (::dladdr(&kAnchor, &info) != 0 && info.dli_fname != nullptr && *info.dli_fname != '\0') {
    // A relative name is relative to the working directory the binary was loaded from; for the
    // main executable it may be argv[0] as typed, which /proc/self/exe below covers.
    const fs::path holder = fs::absolute(info.dli_fname, ec);
    if (!ec && fs::is_regular_file(holder, ec)) dirs.push_back(holder.parent_path());
  }
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) dirs.push_back(exe.parent_path());
  return dirs;
}

// `name` in each place docs of default_bundle_candidates() list, or only `$env` when it is set.
std::vector<fs::path> model_candidates(std::string_view name, const char* env_var, const fs::path& package_datadir) {
  if (const char* env = std::getenv(env_var); env != nullptr && *env != '\0') return {env};
  std::vector<fs::path> dirs;
  if (!package_datadir.empty()) dirs.push_back(package_datadir);
  for (const fs::path& dir : binary_dirs()) {
    dirs.push_back(dir.parent_path() / "share" / "ecr");
    dirs.push_back(dir / "share" / "ecr");
  }
  dirs.push_back(ECR_INSTALL_DATADIR);
  dirs.push_back(ECR_SOURCE_MODELS_DIR);
  std::vector<fs::path> candidates;
  for (const fs::path& dir : dirs) {
    const fs::path path = (dir / name).lexically_normal();
    if (std::find(candidates.begin(), candidates.end(), path) == candidates.end()) candidates.push_back(path);
  }
  return candidates;
}

// The first candidate that is a regular file, else nullopt and the candidates tried, comma-separated.
std::optional<fs::path> first_file(const std::vector<fs::path>& candidates, std::string& tried) {
  for (const auto& path : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) return path;
    tried += (tried.empty() ? "" : ", ") + path.string();
  }
  return std::nullopt;
}

bool env_set(const char* name) { return std::getenv(name) != nullptr && *std::getenv(name) != '\0'; }

}  // namespace

std::vector<fs::path> default_bundle_candidates(const fs::path& package_datadir) {
  return model_candidates(kDefaultBundleName, "ECR_BUNDLE", package_datadir);
}

fs::path default_bundle_path(const fs::path& package_datadir) {
  std::string tried;
  if (auto path = first_file(default_bundle_candidates(package_datadir), tried)) return *path;
  if (env_set("ECR_BUNDLE")) fail<ConfigError>("ECR_BUNDLE names '{}', which is not a file", tried);
  fail<ConfigError>("no bundle given and the shipped model '{}' is in none of: {} (pass --bundle, or set ECR_BUNDLE)",
                    kDefaultBundleName, tried);
}

std::vector<fs::path> default_llm_candidates(const fs::path& package_datadir) {
  return model_candidates(kDefaultLlmName, "ECR_LLM", package_datadir);
}

std::optional<fs::path> default_llm_path(const fs::path& package_datadir) {
  std::string tried;
  if (auto path = first_file(default_llm_candidates(package_datadir), tried)) return path;
  if (env_set("ECR_LLM")) fail<ConfigError>("ECR_LLM names '{}', which is not a file", tried);
  return std::nullopt;
}

}  // namespace ecr
