#include "engine_io.hpp"

#include <charconv>

#include <cstring>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "ecr/io/output_file.hpp"

namespace ecr::cli {

std::vector<std::int32_t> parse_ids(std::string_view text, std::string_view option) {
  std::vector<std::int32_t> ids;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    std::int32_t id = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size())
      fail<InputError>("--{}: expected comma-separated token ids, found '{}'", option, item);
    ids.push_back(id);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  if (ids.empty()) fail<InputError>("--{}: no token ids given", option);
  return ids;
}

Tensor read_npy_f32(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>("cannot open '{}'", path.string());
  const auto bad = [&](std::string_view why) { fail<FormatError>("'{}': not a f32 .npy file: {}", path.string(), why); };
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) bad("bad magic");
  std::uint32_t header_size = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) bad("truncated header");
    header_size = b[0] | (b[1] << 8);
  } else if (magic[6] == 2 || magic[6] == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) bad("truncated header");
    header_size = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<std::uint32_t>(b[3]) << 24);
    if (header_size > (1u << 20)) bad("header too large");
  } else {
    bad("unknown version");
  }
  std::string header(header_size, '\0');
  if (!in.read(header.data(), header_size)) bad("truncated header");
  if (header.find("'descr': '<f4'") == std::string::npos) bad("dtype is not '<f4'");
  if (header.find("'fortran_order': False") == std::string::npos) bad("not C order");
  const auto open = header.find("'shape': (");
  const auto close = open == std::string::npos ? open : header.find(')', open);
  if (close == std::string::npos) bad("no shape");
  Shape shape;
  std::string dims = header.substr(open + 10, close - open - 10);
  for (std::size_t pos = 0; pos < dims.size();) {
    while (pos < dims.size() && (dims[pos] == ' ' || dims[pos] == ',')) ++pos;
    if (pos == dims.size()) break;
    std::size_t end = pos;
    while (end < dims.size() && dims[end] >= '0' && dims[end] <= '9') ++end;
    if (end == pos || end - pos > 18) bad("bad shape");
    shape.push_back(std::stoll(dims.substr(pos, end - pos)));
    pos = end;
  }
  Tensor t = Tensor::empty(DType::f32, shape, path.filename().string());
  if (!in.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(t.nbytes())))
    bad(fmt::format("fewer than the {} data bytes of shape {}", t.nbytes(), shape_string(shape)));
  return t;
}

void write_npy_f32(const std::filesystem::path& path, const Tensor& tensor) {
  std::string dims;
  for (const auto d : tensor.shape()) dims += fmt::format("{},", d);
  if (tensor.rank() > 1) dims.pop_back();
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", dims);
  header.append(63 - (10 + header.size()) % 64, ' ');  // pad so that the data starts 64-aligned
  header += '\n';
  const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  const char size[2] = {static_cast<char>(header.size() & 0xff), static_cast<char>(header.size() >> 8)};
  OutputFile out(path);  // a temporary file renamed into place: never half an array
  out.write(std::string_view(magic, 8));
  out.write(std::string_view(size, 2));
  out.write(header);
  out.write(std::span<const std::byte>(static_cast<const std::byte*>(tensor.raw()), tensor.nbytes()));
  out.commit();
}

}  // namespace ecr::cli
