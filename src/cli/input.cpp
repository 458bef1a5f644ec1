#include "input.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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
// A path opens without blocking: opening a FIFO would otherwise wait for a writer, for ever if
// none comes. read_some() then waits with poll(), which a deadline can end.
int open_input(const std::string& path, std::string_view what) {
  const int fd = path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail<IoError>("{} '{}': cannot open: {}", what, path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    if (fd != STDIN_FILENO) ::close(fd);
    fail<IoError>("{} '{}': is a directory, not a file", what, source_name(path));
  }
  return fd;
}

// Up to `size` bytes into `out`; 0 at the end. IoError on a read error, or when `timeout` passes
// with nothing to read. A FIFO opened before any writer reports neither data nor hang-up until
// one has come, so poll() waits for it; a read only follows poll(), since a non-blocking read of
// such a FIFO would report the end at once.
std::size_t read_some(int fd, char* out, std::size_t size, std::string_view what, const std::string& source,
                      Timeout timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout.value_or(std::chrono::milliseconds(0));
  for (;;) {
    int wait = -1;
    if (timeout) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      wait = static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
    }
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, wait);
    if (ready < 0 && errno != EINTR) fail<IoError>("{} '{}': cannot wait for data: {}", what, source, std::strerror(errno));
    if (ready == 0)
      fail<IoError>("{} '{}': no data within {:g} s (a FIFO or pipe that nothing writes to?); --timeout 0 waits for ever",
                    what, source, std::chrono::duration<double>(*timeout).count());
    if (ready < 0) continue;
    const ssize_t n = ::read(fd, out, size);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR && errno != EAGAIN) fail<IoError>("{} '{}': cannot read: {}", what, source, std::strerror(errno));
  }
}

}  // namespace

std::string read_input(const std::string& path, std::size_t limit, std::string_view what, Timeout timeout) {
  if (path == "-") timeout.reset();
  const int fd = open_input(path, what);
  const std::string source = source_name(path);
  std::string text;
  try {
    for (;;) {
      const std::size_t old = text.size();
      if (old > limit)
        fail<InputError>("{} '{}': larger than the {} MiB an input may have", what, source, limit >> 20);
      text.resize(old + (std::size_t{1} << 16));
      const std::size_t n = read_some(fd, text.data() + old, text.size() - old, what, source, timeout);
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
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)
    fail<InputError>("{}: not valid JSON: a NUL byte at byte offset {}", where, nul);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail<InputError>("{}: not valid JSON: {}", where, printable(e.what()));
  }
}

Dialog read_dialog(const std::string& path, Timeout timeout) {
  return Dialog::from_json(parse_json(read_input(path, kMaxDialogBytes, "dialog", timeout), source_name(path)));
}

LineReader::LineReader(const std::string& path, std::string_view what, Timeout timeout)
    : fd_(open_input(path, what)), owned_(path != "-"), timeout_(path == "-" ? std::nullopt : timeout),
      what_(what), source_(source_name(path)) {}

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
  const std::size_t n = read_some(fd_, buffer_.data() + old, buffer_.size() - old, what_, source_, timeout_);
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
