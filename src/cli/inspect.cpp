// `ecr inspect FILE`: what a bundle or a GGUF file holds, and with --verify whether every byte of
// a bundle is intact.
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "args.hpp"
#include "ecr/core/utf8.hpp"
#include "commands.hpp"
#include "ecr/io/bundle.hpp"
#include "ecr/io/gguf.hpp"
#include "output.hpp"

namespace ecr::cli {

namespace {

std::string human_bytes(std::uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 3) v /= 1024, ++u;
  return u == 0 ? fmt::format("{} B", n) : fmt::format("{:.1f} {}", v, units[u]);
}

// Metadata can carry whole tokenizer vocabularies; show its shape, not megabytes of strings:
// below the top level an object or array of more than 16 entries, or any one more than 6 levels
// down, is shown as its size, and so is a string of more than 120 bytes.
nlohmann::json summarise(const nlohmann::json& j, int depth = 0) {
  constexpr std::size_t kMaxEntries = 16, kMaxString = 120;
  constexpr int kMaxDepth = 6;
  if (j.is_object() || j.is_array()) {
    if (depth > 0 && (j.size() > kMaxEntries || depth >= kMaxDepth))
      return fmt::format("<{} with {} entries>", j.is_object() ? "object" : "array", j.size());
    nlohmann::json out = j.is_object() ? nlohmann::json::object() : nlohmann::json::array();
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (j.is_object()) out[it.key()] = summarise(*it, depth + 1);
      else out.push_back(summarise(*it, depth + 1));
    }
    return out;
  }
  if (j.is_string() && j.get_ref<const std::string&>().size() > kMaxString)
    return fmt::format("<string of {} bytes>", j.get_ref<const std::string&>().size());
  return j;
}

// A GGUF value as JSON. Unless `full`, an array of more than 16 elements shows its first 8 and a
// count ("... 49144 more"), and a string of more than 120 bytes its size: tokenizer vocabularies
// and merges are most of a model's metadata.
nlohmann::json gguf_json(const gguf::Value& v, bool full) {
  using gguf::ValueType;
  constexpr std::size_t kMaxEntries = 16, kShownEntries = 8, kMaxString = 120;
  switch (v.type()) {
    case ValueType::u8: return v.as<std::uint8_t>();
    case ValueType::i8: return v.as<std::int8_t>();
    case ValueType::u16: return v.as<std::uint16_t>();
    case ValueType::i16: return v.as<std::int16_t>();
    case ValueType::u32: return v.as<std::uint32_t>();
    case ValueType::i32: return v.as<std::int32_t>();
    case ValueType::u64: return v.as<std::uint64_t>();
    case ValueType::i64: return v.as<std::int64_t>();
    case ValueType::f32: return v.as<float>();
    case ValueType::f64: return v.as<double>();
    case ValueType::boolean: return v.as<bool>();
    case ValueType::string: {
      const auto s = v.as<std::string_view>();
      if (!full && s.size() > kMaxString) return fmt::format("<string of {} bytes>", s.size());
      return std::string(s);
    }
    case ValueType::array: {
      nlohmann::json out = nlohmann::json::array();
      const auto elements = v.elements(full || v.size() <= kMaxEntries ? v.size() : kShownEntries);
      for (const auto& e : elements) out.push_back(gguf_json(e, full));
      if (elements.size() < v.size()) out.push_back(fmt::format("... {} more", v.size() - elements.size()));
      return out;
    }
  }
  return nullptr;
}

std::string gguf_type(const gguf::Value& v) {
  return v.type() == gguf::ValueType::array ? fmt::format("[{}]", gguf::type_name(v.element_type()))
                                            : std::string(gguf::type_name(v.type()));
}

int inspect_gguf(const Args& args) {
  if (args.get_flag("verify"))
    fail<UsageError>("--verify checks a bundle's checksums; a GGUF file has none");
  const bool full = args.get_flag("metadata");
  const auto file = gguf::File::open(args.get("FILE"));
  if (args.get_flag("json")) {
    nlohmann::json metadata = nlohmann::json::object(), table = nlohmann::json::array();
    for (const auto& kv : file.metadata())
      metadata[std::string(kv.key)] = {{"type", gguf_type(kv.value)}, {"value", gguf_json(kv.value, full)}};
    for (const auto& t : file.tensors())
      table.push_back({{"name", t.name}, {"type", t.traits().name}, {"dims", t.dims},
                       {"offset", t.offset}, {"nbytes", t.nbytes}});
    const nlohmann::json out = {{"file", file.label()}, {"file_size", file.file_size()}, {"version", file.version()},
                                {"alignment", file.alignment()}, {"data_offset", file.data_offset()},
                                {"metadata", metadata}, {"tensors", table}};
    fmt::print("{}\n", json_text(out, 2));
    return 0;
  }
  std::uint64_t data = 0;
  for (const auto& t : file.tensors()) data += t.nbytes;
  fmt::print("gguf     {}\nversion  {}\nsize     {} ({} tensors, {} of tensor data from offset {}, alignment {})\n",
             printable(file.label()), file.version(), human_bytes(file.file_size()), file.tensors().size(),
             human_bytes(data), file.data_offset(), file.alignment());
  fmt::print("metadata ({} keys)\n", file.metadata().size());
  for (const auto& kv : file.metadata())
    fmt::print("  {:<40} {:<8} {}\n", printable(kv.key), gguf_type(kv.value), json_text(gguf_json(kv.value, full)));
  // dims in ggml's order, innermost (the row) first, as llama.cpp prints them.
  fmt::print("\n{:<40} {:>7} {:<24} {:>12} {:>10}\n", "tensor", "type", "dims (ne0 first)", "offset", "bytes");
  for (const auto& t : file.tensors())
    fmt::print("{:<40} {:>7} {:<24} {:>12} {:>10}\n", printable(t.name), t.traits().name, shape_string(t.dims),
               t.offset, human_bytes(t.nbytes));
  return 0;
}

// Only a regular file is opened here: opening a FIFO would wait for a writer. Anything else goes
// to the bundle reader, which refuses it with the reason.
bool is_gguf(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, sizeof magic);
  return in.gcount() == sizeof magic && gguf::has_magic(std::as_bytes(std::span(magic)));
}

}  // namespace

int inspect(const Argv& argv) {
  Args args("ecr inspect FILE [--verify] [--metadata] [--json]",
            "Shows the header, metadata and tensor table of a bundle or of a GGUF file (llama.cpp's format,\n"
            "told by its magic).");
  args.positional("FILE", "bundle or GGUF file")
      .flag("verify", "bundles: check every tensor's checksum, decode it and check it is finite; exit non-zero with the reason on any fault")
      .flag("metadata", "print the metadata in full instead of a summary (GGUF: every array element)")
      .flag("json", "print the tensor table as JSON");
  if (!args.parse(argv)) return 0;
  if (is_gguf(args.get("FILE"))) return inspect_gguf(args);

  BundleOptions options;
  const bool verify = args.get_flag("verify");
  options.verify_checksums = false;  // verify() below checks them, and decodes every tensor too
  const Bundle bundle = Bundle::open(args.get("FILE"), options);
  if (verify) bundle.verify();

  std::uint64_t stored = 0, raw = 0;
  for (const auto& t : bundle.tensors()) stored += t.stored_size, raw += t.raw_size();

  if (args.get_flag("json")) {
    nlohmann::json table = nlohmann::json::array();
    for (const auto& t : bundle.tensors())
      table.push_back({{"name", t.name}, {"dtype", dtype_name(t.dtype)}, {"shape", t.shape},
                       {"codec", codec_name(t.codec)}, {"offset", t.offset}, {"stored_size", t.stored_size},
                       {"crc32", t.crc32}});
    nlohmann::json out = {{"file", bundle.label()}, {"file_size", bundle.file_size()}, {"tensors", table},
                          {"metadata", args.get_flag("metadata") ? bundle.metadata() : summarise(bundle.metadata())}};
    if (verify) out["verified"] = true;
    fmt::print("{}\n", json_text(out, 2));
    return 0;
  }

  fmt::print("bundle   {}\nsize     {} ({} tensors, {} stored, {} in memory)\n", printable(bundle.label()),
             human_bytes(bundle.file_size()), bundle.tensors().size(), human_bytes(stored), human_bytes(raw));
  fmt::print("metadata\n{}\n", json_text(args.get_flag("metadata") ? bundle.metadata() : summarise(bundle.metadata()), 2));
  fmt::print("\n{:<60} {:>5} {:<22} {:>5} {:>12}\n", "tensor", "dtype", "shape", "codec", "stored");
  for (const auto& t : bundle.tensors())
    fmt::print("{:<60} {:>5} {:<22} {:>5} {:>12}\n", printable(t.name), dtype_name(t.dtype), shape_string(t.shape),
               codec_name(t.codec), human_bytes(t.stored_size));
  if (verify) fmt::print("\nverified: every checksum matches, every tensor decodes and holds finite values\n");
  return 0;
}

}  // namespace ecr::cli
