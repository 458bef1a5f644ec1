#include "mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "ecr/core/error.hpp"

namespace ecr::detail {

namespace {
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::size_t file_size_or_throw(int fd, const std::filesystem::path& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail<IoError>("'{}': cannot stat: {}", path.string(), std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    fail<IoError>("'{}': not a regular file ({})", path.string(),
                  S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a pipe" : "a device or socket");
  return static_cast<std::size_t>(st.st_size);
}
}  // namespace

// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer for ever; the
// regular-file check comes right after, and regular files ignore the flag.
std::shared_ptr<FileImage> FileImage::map(const std::filesystem::path& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (f.fd < 0) fail<IoError>("'{}': cannot open: {}", path.string(), std::strerror(errno));
  const std::size_t size = file_size_or_throw(f.fd, path);
  std::shared_ptr<FileImage> image(new FileImage());
  if (size == 0) return image;  // mmap of zero bytes is an error; an empty image fails validation instead
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, f.fd, 0);
  if (p == MAP_FAILED) fail<IoError>("'{}': cannot map {} bytes: {}", path.string(), size, std::strerror(errno));
  image->mapping_ = p;
  image->data_ = static_cast<const std::byte*>(p);
  image->size_ = size;
  return image;
}

void FileImage::populate(std::size_t offset, std::size_t length) const {
#if defined(__linux__)
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14
#endif
  if (!mapping_ || length == 0 || offset >= size_) return;
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t begin = offset / page * page, end = std::min(size_, offset + length);
  // Errors (an older kernel's EINVAL) only mean the pages fault in one by one, as without the call.
  (void)::madvise(static_cast<std::byte*>(mapping_) + begin, end - begin, MADV_POPULATE_READ);
#else
  (void)offset;
  (void)length;
#endif
}

std::shared_ptr<FileImage> FileImage::read(const std::filesystem::path& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (f.fd < 0) fail<IoError>("'{}': cannot open: {}", path.string(), std::strerror(errno));
  const std::size_t size = file_size_or_throw(f.fd, path);
  std::shared_ptr<FileImage> image(new FileImage());
  image->owned_.resize(size);
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::read(f.fd, image->owned_.data() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail<IoError>("'{}': read failed at byte {}: {}", path.string(), done, n == 0 ? "unexpected end" : std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
  image->data_ = image->owned_.data();
  image->size_ = size;
  return image;
}

std::shared_ptr<FileImage> FileImage::copy(std::span<const std::byte> bytes) {
  std::shared_ptr<FileImage> image(new FileImage());
  image->owned_.assign(bytes.begin(), bytes.end());
  image->data_ = image->owned_.data();
  image->size_ = bytes.size();
  return image;
}

FileImage::~FileImage() {
  if (mapping_) ::munmap(mapping_, size_);
}

}  // namespace ecr::detail
