"""Converts HuggingFace checkpoints into one `ecr` bundle (docs/format.md).

    python3 -m tools.convert --out BUNDLE [--gpt2 NAME=DIR]... [--roberta NAME=DIR]... [--dtype f32|f16|bf16|int8]
               [--rec-prompt NAME=model.pt]... [--conv-prompt NAME=model.pt]... [--prompt-n-head NH]
               [--kg DIR [--dialogs FILE [--uniform-emotions]] [--reviews FILE]]
               [--static-tables] [--codec raw|zstd] [--zstd-level N]

A DIR holds config.json, the weights (model.safetensors, else pytorch_model.bin) and the
tokenizer files (vocab.json + merges.txt, optional added_tokens.json). Components appear in
the bundle in command-line order.

- --gpt2: GPT2LMHeadModel or GPT2ForSequenceClassification (told apart by score.weight); type
  "gpt2" or "gpt2_classifier". Keys keep their `transformer.` names (a bare GPT2Model's keys
  get the prefix); the attn.bias / attn.masked_bias buffers are dropped; lm_head.weight is
  dropped when absent or equal to wte ("tied_lm_head": true), kept otherwise. The blocks'
  Conv1D weights (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj), (in, out) in the checkpoint,
  are stored transposed, (out, in) like every other matrix ("conv1d_layout": "out_in"), so that
  the engine maps them as they are instead of transposing a copy at every load.
- --roberta: RobertaForMaskedLM or RobertaModel, stored under the bare RobertaModel names;
  lm_head.*, the pooler (unused by ECR) and the position_ids / token_type_ids buffers are
  dropped.

- --rec-prompt / --conv-prompt: ECR's / UniCRS's KGPrompt state dict (tools.ecr_prompt), its
  floating tensors cast to --dtype like every other weight. The prefix is split into the heads of the GPT-2 components
  given before it (they must agree), or --prompt-n-head. An emotion classifier is a --gpt2 whose
  checkpoint has score.weight.
- --static-tables (with --kg): stores each KGPrompt's static tables (docs/math.md section 4: the entity
  table E, the rec prompt's emotion table M and, with --dialogs, its global table G = C E, and
  the projected prefix rows) as f32 `NAME/static/{entity_table, emotion_table,
  global_entity_table, prefix_rows}`, computed from the weights as stored (after --dtype) by
  tools.reference.kgprompt. The engine then maps them instead of computing them at load.
- --reviews: calls tools.ecr_reviews's add_to_bundle(meta, tensors, FILE, kg) with the
  ecr_kg.KnowledgeGraph of --kg (the module is imported only when the option is given).

Every tensor's shape is checked against config.json; unknown or missing keys are errors.
--dtype casts floating-point weights (all of them, LayerNorm included); integer tensors keep
theirs. --dtype int8 quantizes GPT-2's matrices only (the blocks' Conv1D weights, wte and an
untied lm_head): weight-only, symmetric, one f32 scale per output channel stored beside the weight
as `<name>.scale` (docs/format.md); every other tensor stays f32. A GPT-2 component whose weights
are not f32 records the --dtype in its metadata entry ("dtype"). Tensors are written in a fixed order derived from the config, so the same weights give
the same bundle whatever file they came from.

To add a part: write `add_<part>(bundle, name, directory)` using Bundle.component / tokenizer /
tensor, and register it in PARTS. Bundle also passes for the (writer, meta) pair other modules
take: `bundle.add(name, array)` stores as given, `bundle.meta` is the metadata dict and
`bundle.tensors` the list of (name, array) pairs written at the end.
"""

import argparse
import importlib
import json
import os
import re
import struct
import sys

import numpy as np
import torch

from . import ecr_kg, ecr_prompt
from .ecr_bundle import BundleError, BundleWriter, DEFAULT_ZSTD_LEVEL

# --dtype -> the torch dtype of floating weights; int8 keeps them f32 but for GPT-2's matrices.
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16, "int8": torch.float32}


class ConvertError(Exception):
    pass


# --- reading checkpoints ----------------------------------------------------------------------

SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.int16, "F64": np.float64,
                      "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
                      "BOOL": np.bool_}


def read_safetensors(path):
    """{name: torch tensor} from a .safetensors file, parsed by hand (8-byte header length,
    JSON header, data)."""
    with open(path, "rb") as f:
        data = bytearray(f.read())  # writable, so torch.from_numpy shares it without a warning
    if len(data) < 8:
        raise ConvertError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack_from("<Q", data, 0)
    if 8 + n > len(data):
        raise ConvertError(f"{path}: header length {n} runs past the end of the file")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except ValueError as e:
        raise ConvertError(f"{path}: header is not JSON: {e}") from None
    base, tensors = 8 + n, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ConvertError(f"{path}: tensor '{name}' has unsupported dtype {info.get('dtype')!r}")
        shape = tuple(info["shape"])
        begin, end = info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64))
        if not 0 <= begin <= end <= len(data) - base or end - begin != count * np.dtype(dtype).itemsize:
            raise ConvertError(f"{path}: tensor '{name}' data_offsets {begin}..{end} do not hold {shape} "
                               f"{info['dtype']}")
        t = torch.from_numpy(np.frombuffer(data, dtype=dtype, count=count, offset=base + begin).reshape(shape))
        tensors[name] = t.view(torch.bfloat16) if info["dtype"] == "BF16" else t
    return tensors


def load_state_dict(directory):
    """(state dict, file it came from): model.safetensors if present, else pytorch_model.bin."""
    st, pt = os.path.join(directory, "model.safetensors"), os.path.join(directory, "pytorch_model.bin")
    if os.path.exists(st):
        try:
            return read_safetensors(st), st
        except (KeyError, TypeError, ValueError) as e:
            raise ConvertError(f"{st}: malformed header entry: {e!r}") from None
    if not os.path.exists(pt):
        raise ConvertError(f"{directory}: no model.safetensors or pytorch_model.bin")
    try:
        sd = torch.load(pt, map_location="cpu")
    except Exception as e:  # torch.load raises whatever its unpickler meets
        raise ConvertError(f"{pt}: cannot load: {e}") from None
    if not isinstance(sd, dict):
        raise ConvertError(f"{pt}: expected a state dict, found {type(sd).__name__}")
    for key, value in sd.items():
        if not isinstance(value, torch.Tensor):
            raise ConvertError(f"{pt}: entry '{key}' is a {type(value).__name__}, not a tensor (a training "
                               "checkpoint? save model.state_dict())")
    return sd, pt


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise ConvertError(f"{path}: {e.strerror}") from None
    except ValueError as e:
        raise ConvertError(f"{path}: not valid JSON: {e}") from None


def read_tokenizer(directory):
    """The byte-level BPE files as bundle metadata: vocab, merges text verbatim, added tokens."""
    def pick(*names):
        for n in names:
            if os.path.exists(os.path.join(directory, n)):
                return os.path.join(directory, n)
        raise ConvertError(f"{directory}: no tokenizer file {' or '.join(names)}")

    vocab = read_json(pick("vocab.json", "encoder.json"))
    with open(pick("merges.txt", "vocab.bpe"), encoding="utf-8", newline="") as f:
        merges = f.read()
    added_path = os.path.join(directory, "added_tokens.json")
    added = read_json(added_path) if os.path.exists(added_path) else {}
    return {"kind": "byte_bpe", "vocab": vocab, "merges": merges, "added_tokens": added}


def config_int(config, path, *keys, default=None):
    for key in keys:
        if isinstance(config.get(key), int):
            return config[key]
    if default is not None:
        return default
    raise ConvertError(f"{path}: missing integer field {' or '.join(keys)}")


# --- the bundle being built -------------------------------------------------------------------

class Bundle:
    """Metadata and tensors collected from the parts; written in one go at the end."""

    def __init__(self, dtype="f32", codec="raw", level=DEFAULT_ZSTD_LEVEL):
        self.dtype, self.codec, self.level = DTYPES[dtype], codec, level
        self.dtype_name = dtype
        self.meta = {"ecr_bundle": 1, "tokenizers": {}, "components": {}}
        self.tensors = []  # (name, tensor)

    def component(self, name, entry):
        if not name or "/" in name:
            raise ConvertError(f"component name {name!r}: must be non-empty without '/'")
        if name in self.meta["components"]:
            raise ConvertError(f"component {name!r} given twice")
        self.meta["components"][name] = entry

    def tokenizer(self, preferred, component, tokenizer):
        """Stores a tokenizer once: an identical one already stored is reused; else it is named
        `preferred` ("gpt2", "roberta") or, when that is taken, after the component."""
        tokenizers = self.meta["tokenizers"]
        for name, existing in tokenizers.items():
            if existing == tokenizer:
                return name
        name = preferred if preferred not in tokenizers else component
        while name in tokenizers:
            name += "_tokenizer"
        tokenizers[name] = tokenizer
        return name

    def tensor(self, name, t):
        """A model weight: floating point is cast to --dtype."""
        t = t.detach().cpu()
        if t.is_floating_point() and t.dtype != self.dtype:
            t = t.to(self.dtype)
        self.tensors.append((name, t))

    def add(self, name, array):
        """Stored as given (numpy array or torch tensor), like BundleWriter.add: for parts that
        choose their own dtypes."""
        self.tensors.append((name, array))

    def write(self, path):
        writer = BundleWriter(self.meta)
        for name, t in self.tensors:
            writer.add(name, t, codec=self.codec, level=self.level)
        writer.write(path)


def check_tensors(source, state_dict, expected, ignored):
    """Every expected key present with its shape, nothing else but `ignored(key)` keys."""
    for key, shape in expected.items():
        if key not in state_dict:
            raise ConvertError(f"{source}: missing tensor '{key}' (expected shape {list(shape)})")
        found = tuple(state_dict[key].shape)
        if found != tuple(shape):
            raise ConvertError(f"{source}: tensor '{key}' has shape {list(found)}, expected {list(shape)} "
                               "from config.json")
    extra = [k for k in state_dict if k not in expected and not ignored(k)]
    if extra:
        raise ConvertError(f"{source}: unexpected tensor '{extra[0]}'" +
                           (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "") +
                           " for the architecture config.json describes")


def check_token_ids(directory, tokenizer, vocab_size):
    ids = list(tokenizer["vocab"].values()) + list(tokenizer["added_tokens"].values())
    bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < vocab_size]
    if bad:
        raise ConvertError(f"{directory}: tokenizer has id {bad[0]}, outside the model's vocab_size {vocab_size}")


# --- GPT-2 ------------------------------------------------------------------------------------

def gpt2_shapes(config, path, classifier, root):
    """Expected tensors, keyed as the file spells them: `root` is "transformer." for
    GPT2LMHeadModel / GPT2ForSequenceClassification, "" for a bare GPT2Model."""
    L = config_int(config, path, "n_layer")
    D = config_int(config, path, "n_embd")
    NH = config_int(config, path, "n_head")
    P = config_int(config, path, "n_positions")
    V = config_int(config, path, "vocab_size")
    inner = config_int(config, path, "n_inner", default=4 * D)
    if D % NH:
        raise ConvertError(f"{path}: n_embd {D} is not a multiple of n_head {NH}")
    shapes = {f"{root}wte.weight": (V, D), f"{root}wpe.weight": (P, D)}
    for n in range(L):
        p = f"{root}h.{n}"
        shapes.update({f"{p}.ln_1.weight": (D,), f"{p}.ln_1.bias": (D,),
                       f"{p}.attn.c_attn.weight": (D, 3 * D), f"{p}.attn.c_attn.bias": (3 * D,),
                       f"{p}.attn.c_proj.weight": (D, D), f"{p}.attn.c_proj.bias": (D,),
                       f"{p}.ln_2.weight": (D,), f"{p}.ln_2.bias": (D,),
                       f"{p}.mlp.c_fc.weight": (D, inner), f"{p}.mlp.c_fc.bias": (inner,),
                       f"{p}.mlp.c_proj.weight": (inner, D), f"{p}.mlp.c_proj.bias": (D,)})
    shapes.update({f"{root}ln_f.weight": (D,), f"{root}ln_f.bias": (D,)})
    if classifier:
        labels = config.get("id2label")
        num_labels = config_int(config, path, "num_labels", default=len(labels) if labels else 2)
        shapes["score.weight"] = (num_labels, D)
    return shapes


GPT2_BUFFER = re.compile(r"(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)")
GPT2_CONV1D = re.compile(r"(transformer\.)?h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight")
GPT2_TABLES = re.compile(r"(transformer\.)?wte\.weight|lm_head\.weight")


def is_quantized(key):
    """Whether --dtype int8 quantizes this GPT-2 tensor: the Conv1D weights, wte and lm_head."""
    return bool(GPT2_CONV1D.fullmatch(key) or GPT2_TABLES.fullmatch(key))


def quantize(t):
    """(i8 values, f32 scales) of an (out, in) matrix: symmetric weight-only int8 with one scale
    per output row, scale = max|w| / 127 over the row (1 for an all-zero one),
    q = round-half-even(w / scale). ecr::nn::cast_matrix computes the same."""
    w = t.detach().cpu().float()
    amax = w.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / 127, torch.ones_like(amax))
    q = torch.round(w / scale.unsqueeze(1)).clamp(-127, 127)
    return q.to(torch.int8), scale.contiguous()


def add_gpt2(bundle, name, directory):
    config_path = os.path.join(directory, "config.json")
    config = read_json(config_path)
    if config.get("model_type", "gpt2") != "gpt2":
        raise ConvertError(f"{config_path}: model_type is {config.get('model_type')!r}, expected 'gpt2'")
    sd, source = load_state_dict(directory)
    root = "" if "wte.weight" in sd else "transformer."
    classifier = "score.weight" in sd or any("SequenceClassification" in a for a in config.get("architectures") or [])
    shapes = gpt2_shapes(config, config_path, classifier, root)
    lm_head = None if classifier else sd.get("lm_head.weight")
    if lm_head is not None:
        shapes["lm_head.weight"] = shapes[f"{root}wte.weight"]
    check_tensors(source, sd, shapes, GPT2_BUFFER.fullmatch)
    tied = lm_head is None or torch.equal(lm_head, sd[f"{root}wte.weight"])

    tokenizer = read_tokenizer(directory)
    check_token_ids(directory, tokenizer, config["vocab_size"])
    entry = {"type": "gpt2_classifier" if classifier else "gpt2",
             "tokenizer": bundle.tokenizer("gpt2", name, tokenizer), "config": config}
    if not classifier:
        entry["tied_lm_head"] = tied
    entry["conv1d_layout"] = "out_in"
    if bundle.dtype_name != "f32":
        entry["dtype"] = bundle.dtype_name
    bundle.component(name, entry)
    for key in shapes:
        if key == "lm_head.weight" and tied:
            continue
        # A bare GPT2Model's keys are stored as GPT2LMHeadModel names them.
        stored = key if root or key in ("score.weight", "lm_head.weight") else "transformer." + key
        t = sd[key].t().contiguous() if GPT2_CONV1D.fullmatch(stored) else sd[key]
        if bundle.dtype_name == "int8" and is_quantized(stored):
            q, scale = quantize(t)
            bundle.add(f"{name}/{stored}", q)
            bundle.add(f"{name}/{stored}.scale", scale)
        else:
            bundle.tensor(f"{name}/{stored}", t)


# --- RoBERTa ----------------------------------------------------------------------------------

def roberta_shapes(config, path, root):
    """Expected tensors, keyed as the file spells them: `root` is "roberta." for
    RobertaForMaskedLM, "" for a bare RobertaModel."""
    L = config_int(config, path, "num_hidden_layers")
    D = config_int(config, path, "hidden_size")
    NH = config_int(config, path, "num_attention_heads")
    I = config_int(config, path, "intermediate_size")
    P = config_int(config, path, "max_position_embeddings")
    V = config_int(config, path, "vocab_size")
    T = config_int(config, path, "type_vocab_size", default=2)
    if D % NH:
        raise ConvertError(f"{path}: hidden_size {D} is not a multiple of num_attention_heads {NH}")
    e = f"{root}embeddings"
    shapes = {f"{e}.word_embeddings.weight": (V, D), f"{e}.position_embeddings.weight": (P, D),
              f"{e}.token_type_embeddings.weight": (T, D), f"{e}.LayerNorm.weight": (D,), f"{e}.LayerNorm.bias": (D,)}
    for n in range(L):
        p = f"{root}encoder.layer.{n}"
        for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes.update({f"{p}.{part}.weight": (D, D), f"{p}.{part}.bias": (D,)})
        shapes.update({f"{p}.attention.output.LayerNorm.weight": (D,), f"{p}.attention.output.LayerNorm.bias": (D,),
                       f"{p}.intermediate.dense.weight": (I, D), f"{p}.intermediate.dense.bias": (I,),
                       f"{p}.output.dense.weight": (D, I), f"{p}.output.dense.bias": (D,),
                       f"{p}.output.LayerNorm.weight": (D,), f"{p}.output.LayerNorm.bias": (D,)})
    return shapes


# The MLM head, the pooler (ECR reads the last hidden states) and index buffers.
ROBERTA_IGNORED = re.compile(r"lm_head\..*|(roberta\.)?(pooler\..*|embeddings\.(position_ids|token_type_ids))")


def add_roberta(bundle, name, directory):
    config_path = os.path.join(directory, "config.json")
    config = read_json(config_path)
    if config.get("model_type", "roberta") != "roberta":
        raise ConvertError(f"{config_path}: model_type is {config.get('model_type')!r}, expected 'roberta'")
    sd, source = load_state_dict(directory)
    root = "roberta." if any(k.startswith("roberta.") for k in sd) else ""
    shapes = roberta_shapes(config, config_path, root)
    check_tensors(source, sd, shapes, ROBERTA_IGNORED.fullmatch)
    tokenizer = read_tokenizer(directory)
    check_token_ids(directory, tokenizer, config["vocab_size"])
    bundle.component(name, {"type": "roberta", "tokenizer": bundle.tokenizer("roberta", name, tokenizer),
                            "config": config})
    for key in shapes:
        bundle.tensor(f"{name}/{key[len(root):]}", sd[key])


# --- KGPrompt (tools.ecr_prompt) ---------------------------------------------------------------

def prompt_heads(bundle, path):
    """The attention heads the prefix is split into: --prompt-n-head, else the one n_head all GPT-2
    components given so far agree on."""
    if getattr(bundle, "prompt_n_head", None):
        return bundle.prompt_n_head
    heads = {c["config"]["n_head"] for c in bundle.meta["components"].values() if c["type"].startswith("gpt2")}
    if len(heads) != 1:
        raise ConvertError(f"{path}: cannot tell the prompt's attention heads: give the backbone (--gpt2) first, "
                           "or --prompt-n-head" + (f" (the GPT-2 components have {sorted(heads)})" if heads else ""))
    return heads.pop()


def add_static_tables(bundle, kg_dir):
    """Every KGPrompt component's static tables (--static-tables), from its weights as the bundle
    stores them, the edges of `kg_dir` and the bundle's co-occurrence matrix."""
    from .reference import kgprompt as kgp
    edges, n, _ = kgp.build_edges(kg_dir)
    tensors = dict(bundle.tensors)
    cooc = None
    if "cooccurrence/indptr" in tensors:
        part = lambda key: torch.as_tensor(np.asarray(tensors[f"cooccurrence/{key}"]))  # noqa: E731
        cooc = torch.sparse_csr_tensor(part("indptr").long(), part("indices").long(), part("values").float(),
                                       size=(n, n))
    for name, component in list(bundle.meta["components"].items()):
        kind = {"kgprompt_rec": "rec", "kgprompt_conv": "conv"}.get(component["type"])
        if not kind:
            continue
        sd = {k[len(name) + 1:]: torch.as_tensor(v).float() for k, v in tensors.items() if k.startswith(name + "/")}
        with torch.no_grad():
            ref = kgp.KGPromptReference(sd, edges)
            q = sd[f"{kind}_prefix_embeds"]
            q = ref.mlp(f"{kind}_prefix_proj", q) + q
            tables = {"entity_table": ref.entities,
                      "prefix_rows": ref.linear("prompt_proj2", ref.mlp("prompt_proj1", q) + q)}
            if kind == "rec":
                tables["emotion_table"] = ref.emotions
                if cooc is not None:
                    tables["global_entity_table"] = cooc @ ref.entities
        for key, table in tables.items():
            bundle.add(f"{name}/static/{key}", table.float().contiguous().numpy())


def add_prompt(kind):
    def add(bundle, name, path):
        if not os.path.isfile(path):
            raise ConvertError(f"{path}: no such file (expected a KGPrompt model.pt)")
        if name in bundle.meta["components"]:
            raise ConvertError(f"component {name!r} given twice")
        adder = ecr_prompt.add_rec_prompt if kind == "rec" else ecr_prompt.add_conv_prompt
        adder(bundle, bundle.meta, name, path, prompt_heads(bundle, path), bundle.dtype)
    return add


PARTS = {"gpt2": add_gpt2, "roberta": add_roberta, "rec_prompt": add_prompt("rec"),
         "conv_prompt": add_prompt("conv")}
PART_HELP = {"gpt2": "NAME=DIR", "roberta": "NAME=DIR", "rec_prompt": "NAME=model.pt", "conv_prompt": "NAME=model.pt"}


# --- command line -----------------------------------------------------------------------------

class _Part(argparse.Action):
    """Collects NAME=DIR options of every part in command-line order."""

    def __call__(self, parser, namespace, value, option_string=None):
        name, sep, directory = value.partition("=")
        if not sep or not name or not directory:
            parser.error(f"{option_string} expects NAME=DIR, got {value!r}")
        namespace.parts.append((self.dest, name, directory))


def main(argv=None):
    parser = argparse.ArgumentParser(description="HuggingFace checkpoints -> ecr bundle")
    parser.add_argument("--out", required=True, help="bundle file to write")
    for part in PARTS:
        parser.add_argument(f"--{part.replace('_', '-')}", dest=part, action=_Part, metavar=PART_HELP[part],
                            help=f"add a {part} component")
    parser.add_argument("--prompt-n-head", type=int, help="attention heads of the KGPrompt prefixes (default: "
                        "the GPT-2 components')")
    parser.add_argument("--dtype", choices=list(DTYPES), default="f32", help="floating-point weights (default f32); int8: GPT-2's matrices quantized per output channel, the rest f32")
    parser.add_argument("--codec", choices=["raw", "zstd"], default="raw", help="tensor codec (default raw)")
    parser.add_argument("--zstd-level", type=int, default=DEFAULT_ZSTD_LEVEL)
    parser.add_argument("--kg", metavar="DIR", help="add the knowledge graph (UniCRS/ECR files, tools.ecr_kg)")
    parser.add_argument("--dialogs", metavar="FILE", help="with --kg: ReDial dialogs for the co-occurrence matrix")
    parser.add_argument("--uniform-emotions", action="store_true", help="with --dialogs: plain co-occurrence")
    parser.add_argument("--reviews", metavar="FILE", help="with --kg: movie reviews (tools.ecr_reviews)")
    parser.add_argument("--static-tables", action="store_true", help="with --kg: store the KGPrompts' static "
                        "tables, so that the engine maps them instead of computing them at load")
    parser.add_argument("--untrained", action="store_true", help="mark the bundle as random weights (metadata \"untrained\": true)")
    parser.set_defaults(parts=[])
    args = parser.parse_args(argv)
    if not args.parts and not args.kg:
        parser.error("nothing to convert: give at least one of --kg, " + ", ".join(f"--{p}" for p in PARTS))
    if ((args.dialogs and not args.kg) or (args.uniform_emotions and not args.dialogs) or (args.reviews and not args.kg)
            or (args.static_tables and not args.kg)):
        parser.error("--dialogs, --reviews and --static-tables need --kg, and --uniform-emotions needs --dialogs")
    # Imported only when asked for: the reviews part is optional.
    ecr_reviews = importlib.import_module(".ecr_reviews", __package__) if args.reviews else None
    review_errors = (getattr(ecr_reviews, "ReviewError", ValueError),) if ecr_reviews else ()
    try:
        bundle = Bundle(args.dtype, args.codec, args.zstd_level)
        bundle.prompt_n_head = args.prompt_n_head
        if args.untrained:  # hosts warn that such a bundle's output is noise
            bundle.meta["untrained"] = True
        for part, name, directory in args.parts:
            PARTS[part](bundle, name, directory)
        if args.kg:  # integer and f32 tensors, kept as they are whatever --dtype says
            kg = ecr_kg.add_to_bundle(bundle.meta, bundle.tensors, args.kg, args.dialogs, args.uniform_emotions)
            if ecr_reviews:
                ecr_reviews.add_to_bundle(bundle.meta, bundle.tensors, args.reviews, kg)
            if args.static_tables:
                add_static_tables(bundle, args.kg)
        bundle.write(args.out)
    except (ConvertError, BundleError, ecr_kg.KgError, ecr_prompt.ConversionError) + review_errors as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
