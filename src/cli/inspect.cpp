// `ecr inspect BUNDLE`: what a bundle holds, and with --verify whether every byte is intact.
#include <fmt/format.h>

#include "args.hpp"
#include "commands.hpp"
#include "ecr/io/bundle.hpp"

namespace ecr::cli {

namespace {

std::string human_bytes(std::uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 3) v /= 1024, ++u;
  return u == 0 ? fmt::format("{} B", n) : fmt::format("{:.1f} {}", v, units[u]);
}

// Metadata can carry whole tokenizer vocabularies; show its shape, not megabytes of strings.
nlohmann::json summarise(const nlohmann::json& j, int depth) {
  if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (depth >= 3 && (it->is_object() || it->is_array()) && it->size() > 16)
        out[it.key()] = fmt::format("<{} with {} entries>", it->is_object() ? "object" : "array", it->size());
      else
        out[it.key()] = summarise(*it, depth + 1);
    }
    return out;
  }
  if (j.is_array() && j.size() > 16) return fmt::format("<array with {} entries>", j.size());
  if (j.is_string() && j.get_ref<const std::string&>().size() > 120)
    return fmt::format("<string of {} bytes>", j.get_ref<const std::string&>().size());
  return j;
}

}  // namespace

int inspect(const Argv& argv) {
  Args args("ecr inspect BUNDLE [--verify] [--metadata] [--json]",
            "Shows a bundle's header, metadata and tensor table.");
  args.positional("BUNDLE", "bundle file")
      .flag("verify", "check every tensor's checksum; exit non-zero with the reason on any fault")
      .flag("metadata", "print the metadata in full instead of a summary")
      .flag("json", "print the tensor table as JSON");
  if (!args.parse(argv)) return 0;

  BundleOptions options;
  options.verify_checksums = args.get_flag("verify");
  const Bundle bundle = Bundle::open(args.get("BUNDLE"), options);

  std::uint64_t stored = 0, raw = 0;
  for (const auto& t : bundle.tensors()) stored += t.stored_size, raw += t.raw_size();

  if (args.get_flag("json")) {
    nlohmann::json table = nlohmann::json::array();
    for (const auto& t : bundle.tensors())
      table.push_back({{"name", t.name}, {"dtype", dtype_name(t.dtype)}, {"shape", t.shape},
                       {"codec", codec_name(t.codec)}, {"offset", t.offset}, {"stored_size", t.stored_size},
                       {"crc32", t.crc32}});
    nlohmann::json out = {{"file", bundle.label()}, {"file_size", bundle.file_size()}, {"tensors", table},
                          {"metadata", args.get_flag("metadata") ? bundle.metadata() : summarise(bundle.metadata(), 0)}};
    if (options.verify_checksums) out["verified"] = true;
    fmt::print("{}\n", out.dump(2));
    return 0;
  }

  fmt::print("bundle   {}\nsize     {} ({} tensors, {} stored, {} in memory)\n", bundle.label(),
             human_bytes(bundle.file_size()), bundle.tensors().size(), human_bytes(stored), human_bytes(raw));
  fmt::print("metadata\n{}\n", args.get_flag("metadata") ? bundle.metadata().dump(2)
                                                          : summarise(bundle.metadata(), 0).dump(2));
  fmt::print("\n{:<60} {:>5} {:<22} {:>5} {:>12}\n", "tensor", "dtype", "shape", "codec", "stored");
  for (const auto& t : bundle.tensors())
    fmt::print("{:<60} {:>5} {:<22} {:>5} {:>12}\n", t.name, dtype_name(t.dtype), shape_string(t.shape),
               codec_name(t.codec), human_bytes(t.stored_size));
  if (options.verify_checksums) fmt::print("\nverified: every checksum matches\n");
  return 0;
}

}  // namespace ecr::cli
