// `ecr inspect BUNDLE`: what a bundle holds, and with --verify whether every byte is intact.
#include <fmt/format.h>

#include "args.hpp"
#include "ecr/core/utf8.hpp"
#include "commands.hpp"
#include "ecr/io/bundle.hpp"
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


}  // namespace

int inspect(const Argv& argv) {
  Args args("ecr inspect BUNDLE [--verify] [--metadata] [--json]",
            "Shows a bundle's header, metadata and tensor table.");
  args.positional("BUNDLE", "bundle file")
      .flag("verify", "check every tensor's checksum, decode it and check it is finite; exit non-zero with the reason on any fault")
      .flag("metadata", "print the metadata in full instead of a summary")
      .flag("json", "print the tensor table as JSON");
  if (!args.parse(argv)) return 0;

  BundleOptions options;
  const bool verify = args.get_flag("verify");
  options.verify_checksums = false;  // verify() below checks them, and decodes every tensor too
  const Bundle bundle = Bundle::open(args.get("BUNDLE"), options);
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
