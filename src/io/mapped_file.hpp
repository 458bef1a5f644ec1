// A read-only file image: memory-mapped where possible, otherwise read into memory. Tensors that
// are views into it hold a shared_ptr to it, so the mapping lives as long as any of them.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

namespace ecr::detail {

class FileImage {
 public:
  static std::shared_ptr<FileImage> map(const std::filesystem::path& path);
  static std::shared_ptr<FileImage> read(const std::filesystem::path& path);
  static std::shared_ptr<FileImage> copy(std::span<const std::byte> bytes);
  ~FileImage();
  FileImage(const FileImage&) = delete;
  FileImage& operator=(const FileImage&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }

  // Maps the pages of bytes [offset, offset + length) into this process now, in one call, when the
  // image is a mapping: a model reads every weight at load (the finiteness scan), and one call
  // costs far less than a page fault per 64 KiB. Advisory: kernels without it ignore the request.
  void populate(std::size_t offset, std::size_t length) const;

 private:
  FileImage() = default;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  void* mapping_ = nullptr;      // mmap base, or null
  std::vector<std::byte> owned_;  // used when not mapped
};

}  // namespace ecr::detail
