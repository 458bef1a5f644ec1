#include "support.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <vector>

#include <unistd.h>

#include <fmt/format.h>

namespace ecr::test {

fs::path shared_data() {
  if (const char* env = std::getenv("ECR_SHARED_DATA"); env && fs::is_directory(env)) return env;
  fs::path p = ECR_SHARED_DATA;
  return fs::is_directory(p) ? fs::weakly_canonical(p) : fs::path();
}

fs::path source_dir() { return ECR_SOURCE_DIR; }
fs::path tools_dir() { return source_dir() / "tools"; }
fs::path cli_path() { return ECR_CLI; }

namespace {

// The folders this process made, removed when it exits (ECR_KEEP_TEST_TMP keeps them for a
// post-mortem).
struct TempDirs {
  std::mutex mutex;
  std::vector<fs::path> made;
  ~TempDirs() {
    if (std::getenv("ECR_KEEP_TEST_TMP") != nullptr) return;
    std::error_code ignored;
    for (const auto& dir : made) fs::remove_all(dir, ignored);
  }
};

TempDirs& temp_dirs() {
  static TempDirs dirs;
  return dirs;
}

}  // namespace

fs::path temp_dir(const std::string& name) {
  const char* env = std::getenv("ECR_TEST_TMP");
  fs::path root = env ? fs::path(env) : fs::temp_directory_path() / "ecr-tests";
  // ctest runs each test case of a file as its own process, in parallel: a name shared by the
  // cases of one file must still give each process its own folder, or one case removes what
  // another is reading.
  fs::path dir = root / fmt::format("{}-{}", name, ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto& dirs = temp_dirs();
  const std::lock_guard lock(dirs.mutex);
  if (std::find(dirs.made.begin(), dirs.made.end(), dir) == dirs.made.end()) dirs.made.push_back(dir);
  return dir;
}

bool have_torch() {
  static const bool ok = run_command(fmt::format("{} -c 'import torch, numpy' >/dev/null 2>&1", ECR_PYTHON)) == 0;
  return ok;
}

int run_command(const std::string& command, std::string* output) {
  std::string full = command + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(full.c_str(), "r"), pclose);
  if (!pipe) return -1;
  std::array<char, 4096> buf{};
  std::string out;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe.get())) > 0) out.append(buf.data(), n);
  int status = pclose(pipe.release());
  if (output) *output = std::move(out);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string python_module_command(const std::string& module_and_args) {
  return fmt::format("PYTHONPATH='{}'${{PYTHONPATH:+:$PYTHONPATH}} {} -m tools.{}", source_dir().string(), ECR_PYTHON,
                     module_and_args);
}

int run_python(const std::string& module_and_args, const fs::path& log) {
  std::string out;
  int rc = run_command(python_module_command(module_and_args), &out);
  if (!log.empty()) std::ofstream(log) << out;
  if (rc != 0) MESSAGE("python tool failed (" << rc << "): " << module_and_args << "\n" << out);
  return rc;
}

Tensor read_npy(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  char magic[6];
  in.read(magic, 6);
  REQUIRE(std::memcmp(magic, "\x93NUMPY", 6) == 0);
  unsigned char ver[2];
  in.read(reinterpret_cast<char*>(ver), 2);
  std::uint32_t hlen = 0;
  if (ver[0] == 1) {
    std::uint16_t h16 = 0;
    in.read(reinterpret_cast<char*>(&h16), 2);
    hlen = h16;
  } else {
    in.read(reinterpret_cast<char*>(&hlen), 4);
  }
  std::string header(hlen, '\0');
  in.read(header.data(), hlen);
  REQUIRE_MESSAGE(header.find("'fortran_order': False") != std::string::npos, "npy must be C order: " << header);
  DType dtype;
  if (header.find("'<f4'") != std::string::npos) dtype = DType::f32;
  else if (header.find("'<i4'") != std::string::npos) dtype = DType::i32;
  else if (header.find("'<i8'") != std::string::npos) dtype = DType::i64;
  else FAIL("unsupported npy dtype: " << header);
  Shape shape;
  auto l = header.find("'shape': (");
  REQUIRE(l != std::string::npos);
  l += 10;
  auto r = header.find(')', l);
  std::string dims = header.substr(l, r - l);
  std::size_t pos = 0;
  while (pos < dims.size()) {
    while (pos < dims.size() && (dims[pos] == ' ' || dims[pos] == ',')) ++pos;
    if (pos >= dims.size()) break;
    std::size_t end = pos;
    while (end < dims.size() && std::isdigit(static_cast<unsigned char>(dims[end]))) ++end;
    shape.push_back(std::stoll(dims.substr(pos, end - pos)));
    pos = end;
  }
  Tensor t = Tensor::empty(dtype, shape, path.filename().string());
  in.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
  REQUIRE_MESSAGE(in.good(), "truncated npy " << path);
  return t;
}

void write_npy(const fs::path& path, const Tensor& t) {
  const char* descr = t.dtype() == DType::f32 ? "<f4" : t.dtype() == DType::i32 ? "<i4" : "<i8";
  std::string shape;
  for (auto d : t.shape()) shape += fmt::format("{}, ", d);
  if (t.rank() > 1) shape.resize(shape.size() - 2);
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, shape);
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  std::uint16_t hlen = static_cast<std::uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&hlen), 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE_MESSAGE(a.shape() == b.shape(), "shapes differ: " << shape_string(a.shape()) << " vs " << shape_string(b.shape()));
  auto x = a.span<float>();
  auto y = b.span<float>();
  float m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    float d = std::fabs(x[i] - y[i]);
    if (!(d <= m)) m = std::isnan(d) ? INFINITY : d;
  }
  return m;
}

}  // namespace ecr::test
