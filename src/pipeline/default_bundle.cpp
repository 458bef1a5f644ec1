#include "ecr/default_bundle.hpp"

#include <cstdlib>
#include <string>
#include <system_error>

#include "ecr/core/error.hpp"

namespace ecr {

std::vector<std::filesystem::path> default_bundle_candidates() {
  if (const char* env = std::getenv("ECR_BUNDLE"); env != nullptr && *env != '\0') return {env};
  return {std::filesystem::path(ECR_INSTALL_DATADIR) / kDefaultBundleName,
          std::filesystem::path(ECR_SOURCE_MODELS_DIR) / kDefaultBundleName};
}

std::filesystem::path default_bundle_path() {
  const auto candidates = default_bundle_candidates();
  std::string tried;
  for (const auto& path : candidates) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec)) return path;
    tried += (tried.empty() ? "" : ", ") + path.string();
  }
  if (std::getenv("ECR_BUNDLE") != nullptr && *std::getenv("ECR_BUNDLE") != '\0')
    fail<ConfigError>("ECR_BUNDLE names '{}', which is not a file", tried);
  fail<ConfigError>("no bundle given and the shipped model '{}' is in none of: {} (pass --bundle, or set ECR_BUNDLE)",
                    kDefaultBundleName, tried);
}

}  // namespace ecr
