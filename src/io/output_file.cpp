#include "ecr/io/output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "ecr/core/error.hpp"

namespace ecr {

namespace {

// A name beside `path` that no other writer (thread or process) picks at the same time.
std::filesystem::path temporary_name(const std::filesystem::path& path) {
  static std::atomic<unsigned> counter{0};
  return path.string() + fmt::format(".tmp.{}.{}", ::getpid(), counter.fetch_add(1));
}

}  // namespace

OutputFile::OutputFile(std::filesystem::path path) : path_(std::move(path)) {
  struct stat st {};
  const bool in_place = ::stat(path_.c_str(), &st) == 0 && !S_ISREG(st.st_mode);
  if (in_place) {
    if (S_ISDIR(st.st_mode)) fail<IoError>("'{}': cannot write: it is a directory", path_.string());
    fd_ = ::open(path_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  } else {
    for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
      temporary_ = temporary_name(path_);
      fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && errno != EEXIST) break;
    }
  }
  if (fd_ < 0) {
    const int error = errno;
    temporary_.clear();
    fail<IoError>("'{}': cannot create: {}", path_.string(), std::strerror(error));
  }
}

OutputFile::~OutputFile() { discard(); }

void OutputFile::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temporary_.empty()) ::unlink(temporary_.c_str());
  temporary_.clear();
}

void OutputFile::write(std::span<const std::byte> bytes) {
  if (fd_ < 0) fail<IoError>("'{}': write after the file was closed", path_.string());
  const auto* p = reinterpret_cast<const char*>(bytes.data());
  std::size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : EIO;
      discard();
      fail<IoError>("'{}': cannot write: {}", path_.string(), std::strerror(error));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

void OutputFile::write(std::string_view text) {
  write(std::span<const std::byte>(reinterpret_cast<const std::byte*>(text.data()), text.size()));
}

void OutputFile::commit() {
  if (fd_ < 0) fail<IoError>("'{}': commit after the file was closed", path_.string());
  // Filesystems that allocate late report a full disk here rather than in write().
  if (!temporary_.empty() && ::fsync(fd_) != 0) {
    const int error = errno;
    discard();
    fail<IoError>("'{}': cannot write: {}", path_.string(), std::strerror(error));
  }
  const int closed = ::close(fd_);
  const int close_error = errno;
  fd_ = -1;
  if (closed != 0) {
    discard();
    fail<IoError>("'{}': cannot close: {}", path_.string(), std::strerror(close_error));
  }
  if (temporary_.empty()) return;
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) {
    const int error = errno;
    discard();
    fail<IoError>("'{}': cannot rename the finished file into place: {}", path_.string(), std::strerror(error));
  }
  temporary_.clear();
}

void write_file(const std::filesystem::path& path, std::string_view text) {
  OutputFile out(path);
  out.write(text);
  out.commit();
}

}  // namespace ecr
