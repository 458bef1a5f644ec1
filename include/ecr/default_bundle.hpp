// The shipped models: the small ECR the project trains on ReDial (models/README.md), found the
// same way by the `ecr` tool, the Python package, the examples and hosts that do not name a bundle.
#pragma once

#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

// A host built against an installed ecr gets this from find_package(ecr): the share/ecr folder of
// the prefix the package was found in, wherever that prefix has been moved. It is read where the
// host calls default_bundle_path(), so it names the host's install, not the library's build.
#ifndef ECR_PACKAGE_DATADIR
#define ECR_PACKAGE_DATADIR ""
#endif

namespace ecr {

inline constexpr std::string_view kDefaultBundleName = "ecr-redial-small.ecr";

// Where the default bundle is looked for, in order: $ECR_BUNDLE when set (taken as it is, alone);
// `package_datadir` (the host's find_package prefix) when not empty; beside the binary that holds
// the library (an executable or the Python module), in <dir>/../share/ecr/ (bin/ or lib/ of an
// install prefix) and <dir>/share/ecr/ (the Python package's own copy), for the binary itself and
// for the running executable; the prefix the library was configured for (<prefix>/share/ecr/);
// then the source tree's models/ (a build that was never installed).
std::vector<std::filesystem::path> default_bundle_candidates(
    const std::filesystem::path& package_datadir = ECR_PACKAGE_DATADIR);

// The first candidate that is a regular file. ConfigError naming every place tried when none is,
// or when $ECR_BUNDLE names a file that is not there.
std::filesystem::path default_bundle_path(const std::filesystem::path& package_datadir = ECR_PACKAGE_DATADIR);

// The default LLM of the LLM responder: SmolLM2-135M-Instruct, which tools/fetch_llm.sh puts in
// the source tree's models/ and `cmake --install` copies to share/ecr like the bundle. Looked for
// in the same places, $ECR_LLM first (taken as it is, alone).
inline constexpr std::string_view kDefaultLlmName = "SmolLM2-135M-Instruct.Q4_1.gguf";
std::vector<std::filesystem::path> default_llm_candidates(
    const std::filesystem::path& package_datadir = ECR_PACKAGE_DATADIR);
// The first candidate that is a regular file, or nullopt: the LLM is optional. ConfigError when
// $ECR_LLM names a file that is not there.
std::optional<std::filesystem::path> default_llm_path(const std::filesystem::path& package_datadir = ECR_PACKAGE_DATADIR);

}  // namespace ecr
