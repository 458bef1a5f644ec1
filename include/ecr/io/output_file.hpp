// Writing an output file so that no reader ever sees half of it, and no failure passes as success.
//
// A regular file (or a path that does not exist yet) is written to a temporary file beside it
// and renamed over it only after every write, the flush to disk (fsync) and the close succeeded;
// on any failure the temporary file is removed and the target is left as it was. Anything else
// (a terminal, a pipe, /dev/stdout, /dev/full) is written in place with the same checks.
// Failures are IoError naming the target and the system's reason ("No space left on device").
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace ecr {

class OutputFile {
 public:
  // Creates the temporary file (or opens the target in place); IoError when it cannot.
  explicit OutputFile(std::filesystem::path path);
  // Not committed: the temporary file is removed.
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(std::span<const std::byte> bytes);
  void write(std::string_view text);
  // fsync, close and rename: the target now holds exactly what was written.
  void commit();

  const std::filesystem::path& path() const { return path_; }

 private:
  void discard() noexcept;

  std::filesystem::path path_, temporary_;  // temporary_ empty: written in place
  int fd_ = -1;
};

// The whole file at once.
void write_file(const std::filesystem::path& path, std::string_view text);

}  // namespace ecr
