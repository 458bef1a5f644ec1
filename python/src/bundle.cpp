// ecr.Bundle (inspection of a bundle file), ecr.Tokenizer (byte-level BPE, numpy ids) and
// ecr.KnowledgeGraph (the KG a Recommender loaded).
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "ecr/core/error.hpp"
#include "ecr/default_bundle.hpp"
#include "ecr/io/component.hpp"
#include "ecr/kg/knowledge_graph.hpp"
#include "ecr/text/byte_level_bpe.hpp"

namespace ecr::python {

namespace {

using nlohmann::json;

// Bundle.tensor's default cap on what a zstd tensor may decompress to: more than any tensor of
// the models ecr runs (GPT-2's 154 MB token embedding).
constexpr std::uint64_t kMaxTensorBytes = std::uint64_t{1} << 30;

py::object tensor_info(const TensorInfo& info) {
  return types().tensor_info(info.name, std::string(dtype_name(info.dtype)), std::string(codec_name(info.codec)),
                             py::tuple(py::cast(info.shape)), info.offset, info.stored_size, info.crc32);
}

// A read-only numpy view of the tensor's bytes, which keeps the tensor (and so the mapped file)
// alive. numpy has no bfloat16: those widen to a float32 copy.
py::array tensor_array(const Tensor& t) {
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  if (t.dtype() == DType::bf16) {
    py::array_t<float> out(shape);
    const auto* bits = static_cast<const std::uint16_t*>(t.raw());
    float* dst = out.mutable_data();
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      const std::uint32_t widened = static_cast<std::uint32_t>(bits[i]) << 16;
      std::memcpy(dst + i, &widened, sizeof widened);
    }
    return out;
  }
  if (is_block_type(t.dtype())) fail<ShapeError>("tensor '{}': {} has no numpy dtype", t.name(), dtype_name(t.dtype()));
  const char* format = nullptr;
  switch (t.dtype()) {
    case DType::f32: format = "float32"; break;
    case DType::f16: format = "float16"; break;
    case DType::i32: format = "int32"; break;
    case DType::i64: format = "int64"; break;
    case DType::i8: format = "int8"; break;
    case DType::u8: format = "uint8"; break;
    default: break;  // bf16 (widened above) and the block types (refused above)
  }
  auto* keep = new Tensor(t);
  const py::capsule owner(keep, [](void* p) { delete static_cast<Tensor*>(p); });
  py::array out(py::dtype(format), shape, const_cast<void*>(t.raw()), owner);
  out.attr("setflags")(py::arg("write") = false);
  return out;
}

// pybind11 holds objects by std::shared_ptr<T>; a Tokenizer is immutable, so the const is only
// taken off for the holder.
std::shared_ptr<Tokenizer> held(std::shared_ptr<const Tokenizer> tokenizer) {
  return std::const_pointer_cast<Tokenizer>(std::move(tokenizer));
}

std::shared_ptr<Tokenizer> tokenizer_from_bundle(const Bundle& bundle, const std::string& name) {
  // A component's name stands for the tokenizer it uses.
  if (!has_tokenizer(bundle, name) && has_component(bundle, name))
    return held(make_tokenizer(read_component(bundle, name).tokenizer_spec()));
  return held(make_tokenizer(tokenizer_spec(bundle, name)));
}

std::vector<std::int32_t> ids_arg(const py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>& ids) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(ids.size()));
  const std::int64_t* data = ids.data();
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (data[i] < 0 || data[i] > std::numeric_limits<std::int32_t>::max())
      fail<InputError>("ids[{}] = {} is not a token id", i, data[i]);
    out[i] = static_cast<std::int32_t>(data[i]);
  }
  return out;
}

std::string entity_type(const KnowledgeGraph& kg, std::int64_t id) {
  return std::string(entity_type_name(kg.entity_type(id)));
}

}  // namespace

std::filesystem::path path_arg(py::handle obj) {
  return std::filesystem::path(py::module_::import("os").attr("fspath")(obj).cast<std::string>());
}

Bundle bundle_arg(py::handle obj, bool verify_checksums) {
  if (py::isinstance<Bundle>(obj)) return obj.cast<Bundle>();
  const std::filesystem::path path = obj.is_none() ? default_bundle_path() : path_arg(obj);
  BundleOptions options;
  options.verify_checksums = verify_checksums;
  py::gil_scoped_release unlocked;
  return Bundle::open(path, options);
}

void bind_bundle(py::module_& m) {
  m.def(
      "default_bundle_path", [] { return default_bundle_path().string(); },
      "The shipped model's path: $ECR_BUNDLE when set, the package's own copy (ecr/share/ecr/), an installed "
      "prefix's, then the source tree's models/. ConfigError naming every place tried when there is none.");

  py::class_<Bundle>(m, "Bundle", "A bundle file (docs/format.md): metadata, tensor table, memory-mapped tensors.")
      .def_static(
          "open", [](py::handle path, bool verify, bool memory_map) {
            if (py::isinstance<Bundle>(path)) return path.cast<Bundle>();
            BundleOptions options;
            options.verify_checksums = verify;
            options.memory_map = memory_map;
            const std::filesystem::path p = path.is_none() ? default_bundle_path() : path_arg(path);
            py::gil_scoped_release unlocked;
            return Bundle::open(p, options);
          },
          py::arg("path") = py::none(), py::kw_only(), py::arg("verify_checksums") = true,
          py::arg("memory_map") = true,
          "Opens and validates a bundle (None: the shipped model). FormatError / IoError naming the file and "
          "the fault.")
      .def_property_readonly("label", &Bundle::label, "The file name the errors use.")
      .def_property_readonly("metadata", [](const Bundle& b) { return from_json(b.metadata()); },
                             "The metadata block as a dict (a fresh copy each time).")
      .def_property_readonly(
          "components",
          [](const Bundle& b) {
            const auto& meta = b.metadata();
            return meta.contains("components") ? from_json(meta["components"]) : py::dict();
          },
          "Component name -> its metadata entry (type, config, tokenizer).")
      .def_property_readonly("untrained", [](const Bundle& b) {
        const auto& meta = b.metadata();
        return meta.contains("untrained") && meta["untrained"] == true;
      }, "True for random weights (tools/make_random_bundle.py, convert.py --untrained).")
      .def_property_readonly("tensors", [](const Bundle& b) {
        py::list out;
        for (const auto& info : b.tensors()) out.append(tensor_info(info));
        return out;
      }, "The tensor table, as ecr.TensorInfo rows.")
      .def_property_readonly("file_size", &Bundle::file_size)
      .def("info", [](const Bundle& b, const std::string& name) { return tensor_info(b.info(name)); }, py::arg("name"))
      .def(
          "tensor",
          [](const Bundle& b, const std::string& name, std::optional<std::uint64_t> max_bytes) {
            // A zstd frame of a few KiB may decode to gigabytes: past the cap, only when asked.
            const TensorInfo& info = b.info(name);
            if (info.codec == Codec::zstd && max_bytes && info.raw_size() > *max_bytes)
              fail<InputError>("bundle '{}': tensor '{}' decompresses to {} bytes, more than max_bytes={}; pass a "
                               "larger max_bytes (or None) to read it",
                               b.label(), name, info.raw_size(), *max_bytes);
            Tensor t;
            {
              py::gil_scoped_release unlocked;
              t = b.tensor(name);
            }
            return tensor_array(t);
          },
          py::arg("name"), py::kw_only(), py::arg("max_bytes") = kMaxTensorBytes,
          "The tensor as a read-only numpy array (a view of the mapped file for raw tensors; bf16 widens to "
          "float32). FormatError when absent. A zstd tensor is decompressed into memory: one that decodes to "
          "more than max_bytes (default 1 GiB; None: no limit) is an InputError instead.")
      .def(
          "verify",
          [](const Bundle& b) {
            py::gil_scoped_release unlocked;
            b.verify();
          },
          "Re-checks every tensor's checksum, decodes every tensor (zstd ones through a small buffer) and checks "
          "that floating ones are finite; FormatError on the first fault.")
      .def("__contains__", [](const Bundle& b, const std::string& name) { return b.contains(name); })
      .def("__len__", [](const Bundle& b) { return b.tensors().size(); })
      .def("__repr__", [](const Bundle& b) {
        return fmt::format("ecr.Bundle('{}', {} tensors, {} bytes)", b.label(), b.tensors().size(), b.file_size());
      });

  py::class_<Tokenizer, std::shared_ptr<Tokenizer>>(
      m, "Tokenizer",
      "A model's tokenizer (docs/math.md section 1; today byte-level BPE as GPT-2 and RoBERTa use it); ids are "
      "numpy int32.")
      .def_static(
          "from_bundle",
          [](py::handle bundle, const std::string& name) { return tokenizer_from_bundle(bundle_arg(bundle, false), name); },
          py::arg("bundle") = py::none(), py::arg("name") = "gpt2",
          "A bundle's tokenizer by its name (\"gpt2\", \"roberta\") or by a component that uses it (\"backbone\").")
      .def_static(
          "from_files",
          [](py::handle vocab, py::handle merges, std::map<std::string, std::int32_t> added) {
            return held(std::make_shared<const text::ByteLevelBpe>(
                text::ByteLevelBpe::from_files(path_arg(vocab), path_arg(merges), std::move(added))));
          },
          py::arg("vocab"), py::arg("merges"), py::arg("added_tokens") = std::map<std::string, std::int32_t>{},
          "vocab.json / encoder.json and merges.txt / vocab.bpe; added_tokens maps extra tokens to ids.")
      .def_static(
          "from_json", [](py::handle spec) { return held(make_tokenizer(to_json(spec, "tokenizer"))); },
          py::arg("spec"), "The form bundles carry: {\"kind\": \"byte_bpe\", \"vocab\": ..., \"merges\": ...}.")
      .def(
          "encode",
          [](const Tokenizer& t, const std::string& text, bool control_tokens) {
            std::vector<std::int32_t> ids;
            {
              py::gil_scoped_release unlocked;
              ids = t.encode(text, control_tokens ? ControlText::as_tokens : ControlText::as_text);
            }
            return py::array_t<std::int32_t>(static_cast<py::ssize_t>(ids.size()), ids.data());
          },
          py::arg("text"), py::arg("control_tokens") = true,
          "Token ids as a numpy int32 array; control tokens spelled in the text (\"<|endoftext|>\") map to their "
          "ids, or with control_tokens=False stay plain text (for text from outside).")
      .def(
          "decode",
          [](const Tokenizer& t, const py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>& ids) {
            const std::vector<std::int32_t> v = ids_arg(ids);
            py::gil_scoped_release unlocked;
            return t.decode(v);
          },
          py::arg("ids"),
          "The text of any sequence of ids; bytes that split a character become U+FFFD. InputError on an "
          "unknown id.")
      .def("token_to_id", &Tokenizer::token_to_id, py::arg("token"), "None for a token the vocab lacks.")
      .def("id_to_token", &Tokenizer::id_to_token, py::arg("id"))
      .def_property_readonly("vocab_size", &Tokenizer::vocab_size)
      .def_property_readonly(
          "special_tokens",
          [](const Tokenizer& t) {
            const SpecialTokens& s = t.special_tokens();
            py::dict out;
            out["bos"] = s.bos, out["eos"] = s.eos, out["pad"] = s.pad, out["unk"] = s.unk;
            out["control"] = s.control;
            return out;
          },
          "{\"bos\", \"eos\", \"pad\", \"unk\": id or None, \"control\": every control token's id}.")
      .def("to_json", [](const Tokenizer& t) { return from_json(t.to_json()); })
      .def("__len__", [](const Tokenizer& t) { return t.vocab_size(); })
      .def("__repr__", [](const Tokenizer& t) { return fmt::format("ecr.Tokenizer(vocab_size={})", t.vocab_size()); });

  py::class_<KnowledgeGraph>(m, "KnowledgeGraph", "The movie knowledge graph a Recommender loaded (Recommender.graph).")
      .def_property_readonly("num_entities", &KnowledgeGraph::num_entities, "N, the padding entity included.")
      .def_property_readonly("pad_entity", &KnowledgeGraph::pad_entity)
      .def_property_readonly("num_relations", &KnowledgeGraph::num_relations)
      .def_property_readonly("num_edges", &KnowledgeGraph::num_edges)
      .def_property_readonly(
          "items",
          [](const KnowledgeGraph& kg) {
            const auto items = kg.items();
            return py::array_t<std::int32_t>(static_cast<py::ssize_t>(items.size()), items.data());
          },
          "The recommendable entity ids.")
      .def(
          "entity_id",
          [](const KnowledgeGraph& kg, const std::string& name) { return kg.entity_id(name); },
          py::arg("name"), "The id of a key or display name; None when the graph has no such entity.")
      .def(
          "entity_name", [](const KnowledgeGraph& kg, std::int64_t id) { return std::string(kg.entity_name(id)); },
          py::arg("id"))
      .def(
          "entity_key", [](const KnowledgeGraph& kg, std::int64_t id) { return std::string(kg.entity_key(id)); },
          py::arg("id"))
      .def("entity_type", &entity_type, py::arg("id"), "\"movie\", \"genre\", \"person\" or \"other\".")
      .def("is_item", &KnowledgeGraph::is_item, py::arg("id"))
      .def("relation_name", &KnowledgeGraph::relation_name, py::arg("relation"))
      .def(
          "relation_id",
          [](const KnowledgeGraph& kg, const std::string& name) { return kg.relation_id(name); },
          py::arg("name"))
      .def(
          "neighbours",
          [](const KnowledgeGraph& kg, std::int64_t id, std::int64_t relation) {
            const auto n = kg.neighbours(id, relation);
            return std::vector<std::int32_t>(n.begin(), n.end());
          },
          py::arg("id"), py::arg("relation"), "One-hop neighbours of an entity by a relation.")
      .def("__contains__", [](const KnowledgeGraph& kg, std::int64_t id) { return kg.contains(id); })
      .def("__len__", [](const KnowledgeGraph& kg) { return kg.num_entities(); })
      .def("__repr__", [](const KnowledgeGraph& kg) {
        return fmt::format("ecr.KnowledgeGraph({} entities, {} items, {} relations, {} edges)", kg.num_entities(),
                           kg.items().size(), kg.num_relations(), kg.num_edges());
      });
}

}  // namespace ecr::python
