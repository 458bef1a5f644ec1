// The shipped model: the small ECR the project trains on ReDial (models/README.md), found the
// same way by the `ecr` tool, the examples and hosts that do not name a bundle.
#pragma once

#include <filesystem>
#include <string_view>
#include <vector>

namespace ecr {

inline constexpr std::string_view kDefaultBundleName = "ecr-redial-small.ecr";

// Where the default bundle is looked for, in order: $ECR_BUNDLE when set (taken as it is), the
// installed copy (<prefix>/share/ecr/), then the source tree's models/ (a build that was never
// installed).
std::vector<std::filesystem::path> default_bundle_candidates();

// The first candidate that is a regular file. ConfigError naming every place tried when none is,
// or when $ECR_BUNDLE names a file that is not there.
std::filesystem::path default_bundle_path();

}  // namespace ecr
