#include "input.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "ecr/core/error.hpp"
#include "ecr/core/json_depth.hpp"
#include "ecr/core/utf8.hpp"

namespace ecr::cli {

namespace {

std::string source_name(const std::string& path) { return path == "-" ? "<stdin>" : path; }

// A descriptor to read `path` from; IoError naming it when it cannot be opened or is a directory.
int open_input(const std::string& path, std::string_view what) {
  const int fd = path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail<IoError>("{} '{}': cannot open: {}", what, path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    if (fd != STDIN_FILENO) ::close(fd);
    fail<IoError>("{} '{}': is a directory, not a file", what, source_name(path));
  }
  return fd;
}

// Up to `size` bytes into `out`; 0 at the end. IoError on a read error.
std::size_t read_some(int fd, char* out, std::size_t size, std::string_view what, const std::string& source) {
  for (;;) {
    const ssize_t n = ::read(fd, out, size);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) fail<IoError>("{} '{}': cannot read: {}", what, source, std::strerror(errno));
  }
}

}  // namespace

std::string read_input(const std::string& path, std::size_t limit, std::string_view what) {
  const int fd = open_input(path, what);
  const std::string source = source_name(path);
  std::string text;
  try {
    for (;;) {
      const std::size_t old = text.size();
      if (old > limit)
        fail<InputError>("{} '{}': larger than the {} MiB an input may have", what, source, limit >> 20);
      text.resize(old + (std::size_t{1} << 16));
      const std::size_t n = read_some(fd, text.data() + old, text.size() - old, what, source);
      text.resize(old + n);
      if (n == 0) break;
    }
  } catch (...) {
    if (fd != STDIN_FILENO) ::close(fd);
    throw;
  }
  if (fd != STDIN_FILENO) ::close(fd);
  return text;
}

nlohmann::json parse_json(std::string_view text, std::string_view where) {
  if (json_depth(text) > kMaxJsonDepth)
    fail<InputError>("{}: JSON nests arrays and objects deeper than {} levels", where, kMaxJsonDepth);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail<InputError>("{}: not valid JSON: {}", where, printable(e.what()));
  }
}

LineReader::LineReader(const std::string& path, std::string_view what)
    : fd_(open_input(path, what)), owned_(path != "-"), source_(source_name(path)) {}

LineReader::~LineReader() {
  if (owned_) ::close(fd_);
}

bool LineReader::fill() {
  if (start_ > 0) {
    buffer_.erase(0, start_);
    start_ = 0;
  }
  const std::size_t old = buffer_.size();
  buffer_.resize(old + (std::size_t{1} << 16));
  const std::size_t n = read_some(fd_, buffer_.data() + old, buffer_.size() - old, "input", source_);
  buffer_.resize(old + n);
  eof_ = n == 0;
  return n > 0;
}

bool LineReader::next(std::string& line) {
  std::size_t scanned = start_;
  for (;;) {
    const std::size_t eol = buffer_.find('\n', scanned);
    if (eol != std::string::npos) {
      if (eol - start_ > kMaxLineBytes) break;
      line.assign(buffer_, start_, eol - start_);
      start_ = eol + 1;
      ++line_number_;
      return true;
    }
    if (buffer_.size() - start_ > kMaxLineBytes) break;
    scanned = buffer_.size();
    const std::size_t offset = scanned - start_;
    if (eof_ || !fill()) {
      if (buffer_.size() == start_) return false;
      line.assign(buffer_, start_, std::string::npos);  // a last line without a newline
      start_ = buffer_.size();
      ++line_number_;
      return true;
    }
    scanned = start_ + offset;
  }
  fail<InputError>("{}:{}: a line longer than the {} MiB a line may have", source_, line_number_ + 1,
                   kMaxLineBytes >> 20);
}

}  // namespace ecr::cli
