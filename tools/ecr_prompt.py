"""Converts KGPrompt checkpoints (docs/math.md appendix A) into bundle components for the engine's
PromptEncoder.

    add_rec_prompt(writer, meta, name, model_pt_path, n_head)    # ECR KGPrompt with emotions
    add_conv_prompt(writer, meta, name, model_pt_path, n_head)   # UniCRS KGPrompt, conv prefix

`writer` is anything with .add(name, array): an ecr_bundle.BundleWriter, or a collector when the
metadata is still being assembled (BundleWriter takes its metadata when it is made). `meta` is
the bundle's metadata dict; meta["components"][name] becomes
    {"type": "kgprompt_rec" | "kgprompt_conv", "config": {...}}
and every tensor the forward path uses goes in as "name/<checkpoint key>", as float32 unless
the caller passes another floating dtype (tools.convert passes its --dtype). Keys the
published forward path never reads are dropped (rec: emo_fuse_proj3.*, copy_proj_1.*,
copy_proj_2.*; both: edge_index, edge_type, since the KG files are the source of edges). Any
other unknown key, a missing key, or shapes that contradict each other raise ConversionError.

    python3 -m tools.ecr_prompt --n-head NH [--rec model.pt] [--conv model.pt] --out bundle.ecr

writes a bundle holding just these components ("rec_prompt", "conv_prompt"), for tests.
"""

import argparse
import sys

import torch

from .ecr_bundle import BundleWriter


class ConversionError(ValueError):
    pass


def _mlp(key):
    return [f"{key}.0.weight", f"{key}.0.bias", f"{key}.2.weight", f"{key}.2.bias"]


def _linear(key):
    return [f"{key}.weight", f"{key}.bias"]


_SHARED = (["kg_encoder.weight", "kg_encoder.comp", "kg_encoder.root", "kg_encoder.bias", "node_embeds"]
           + _mlp("entity_proj1") + _linear("entity_proj2") + _mlp("token_proj1") + _linear("token_proj2")
           + ["cross_attn.weight"] + _mlp("prompt_proj1") + _linear("prompt_proj2"))
REC_KEYS = (_SHARED + ["emo_embeds"] + _mlp("emo_proj1") + _linear("emo_proj2") + _mlp("emo_fuse_proj1")
            + _linear("emo_fuse_proj2") + ["rec_prefix_embeds"] + _mlp("rec_prefix_proj"))
CONV_KEYS = _SHARED + ["conv_prefix_embeds"] + _mlp("conv_prefix_proj")
_UNUSED_PREFIXES = {"rec": ("emo_fuse_proj3.", "copy_proj_1.", "copy_proj_2."), "conv": ()}
_EDGE_KEYS = ("edge_index", "edge_type")


def _load(path):
    sd = torch.load(path, map_location="cpu")
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConversionError(f"{path}: expected a state dict of tensors (KGPrompt.save writes one)")
    return sd


def _select(sd, kind, path):
    required = REC_KEYS if kind == "rec" else CONV_KEYS
    missing = [k for k in required if k not in sd]
    if missing:
        raise ConversionError(f"{path}: not a {kind} KGPrompt checkpoint, missing {', '.join(missing)}")
    unused = [k for k in sd if k in _EDGE_KEYS or k.startswith(_UNUSED_PREFIXES[kind])]
    unknown = sorted(set(sd) - set(required) - set(unused))
    if unknown:
        raise ConversionError(f"{path}: unexpected keys for a {kind} KGPrompt: {', '.join(unknown)}")
    return {k: sd[k] for k in required}


def _config(sd, kind, n_head, path):
    def dim(key, i):
        return int(sd[key].shape[i])

    hidden = dim("cross_attn.weight", 0)
    width = dim("prompt_proj2.weight", 0)
    if width % (2 * hidden):
        raise ConversionError(f"{path}: prompt_proj2.weight has {width} rows, not a multiple of 2 x {hidden}")
    if hidden % n_head:
        raise ConversionError(f"{path}: hidden size {hidden} is not a multiple of n_head {n_head}")
    config = {
        "hidden_size": hidden,
        "token_hidden_size": dim("token_proj2.weight", 1),
        "entity_hidden_size": dim("node_embeds", 1),
        "n_head": n_head,
        "n_layer": width // (2 * hidden),
        "n_block": 2,
        "n_entity": dim("node_embeds", 0),
        "num_relations": dim("kg_encoder.comp", 0),
        "num_bases": dim("kg_encoder.comp", 1),
        "n_prefix": dim(f"{kind}_prefix_embeds", 0),
    }
    if kind == "rec":
        config["emotion_hidden_size"] = dim("emo_proj2.weight", 0)
        config["n_emotion"] = dim("emo_embeds", 0) - 1
    return config


def _add(kind, writer, meta, name, model_pt_path, n_head, dtype=torch.float32):
    sd = _select(_load(model_pt_path), kind, model_pt_path)
    meta.setdefault("components", {})[name] = {"type": f"kgprompt_{kind}",
                                               "config": _config(sd, kind, n_head, model_pt_path)}
    for key, tensor in sd.items():
        writer.add(f"{name}/{key}", tensor.detach().to(dtype).contiguous())
    return meta["components"][name]


def add_rec_prompt(writer, meta, name, model_pt_path, n_head, dtype=torch.float32):
    """ECR's rec KGPrompt (model.pt). n_head: the backbone's attention heads."""
    return _add("rec", writer, meta, name, model_pt_path, n_head, dtype)


def add_conv_prompt(writer, meta, name, model_pt_path, n_head, dtype=torch.float32):
    """UniCRS's conv KGPrompt (model.pt). n_head: the backbone's attention heads."""
    return _add("conv", writer, meta, name, model_pt_path, n_head, dtype)


class _Collector:
    def __init__(self):
        self.tensors = []

    def add(self, name, array):
        self.tensors.append((name, array))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rec", help="ECR rec KGPrompt model.pt")
    p.add_argument("--conv", help="UniCRS conv KGPrompt model.pt")
    p.add_argument("--n-head", type=int, required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    meta, tensors = {"ecr_bundle": 1, "components": {}}, _Collector()
    try:
        if a.rec:
            add_rec_prompt(tensors, meta, "rec_prompt", a.rec, a.n_head)
        if a.conv:
            add_conv_prompt(tensors, meta, "conv_prompt", a.conv, a.n_head)
    except ConversionError as e:
        print(f"ecr_prompt.py: {e}", file=sys.stderr)
        return 1
    writer = BundleWriter(meta)
    for name, array in tensors.tensors:
        writer.add(name, array)
    writer.write(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
