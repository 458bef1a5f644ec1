"""Plain-torch reference of the Responder's two decoders (docs/math.md sections 7 and 8), built from
the other references: tools.reference.gpt2 (GPT-2, greedy decoding with HuggingFace's
no_repeat_ngram_size), tools.reference.roberta and tools.reference.kgprompt (UniCRS's conv
KGPrompt and its R-GCN).

    python3 -m tools.reference.responder --backbone DIR --text-encoder DIR --conv-prompt model.pt --kg-dir DIR \\
        --context-ids 1,2,3 --prompt-ids 0,5,2 [--entities 4,7] [--template-max-new-tokens 50] \\
        [--generator DIR --generator-ids 9,8,50256 [--max-new-tokens 150]] \\
        [--no-repeat-ngram 3] [--eos 50256] --out result.json

Template: RoBERTa over --prompt-ids, the conv prompt over those states and --entities, then
greedy decoding after --context-ids (the GPT-2 context with "System:" already appended) with
that prefix. Reply: greedy decoding of the generator after --generator-ids, no prefix. Token
ids come in as the engine tokenized them (the tokenizer has its own tests). Writes
{"template": [...], "reply": [...]} with new tokens only, a final eos included.
"""

import argparse
import json
import sys

import torch

from . import gpt2, kgprompt
from .roberta import Roberta


def ids(text):
    return [int(t) for t in text.split(",") if t.strip()]


def template(a):
    roberta = Roberta(a.text_encoder)
    edges, _, _ = kgprompt.build_edges(a.kg_dir)
    prompt = kgprompt.KGPromptReference(kgprompt.load_state(a.conv_prompt, torch.float32), edges)
    tokens = roberta.hidden(a.prompt_ids)
    prefix = prompt.prompt("conv", tokens, torch.tensor(a.entities, dtype=torch.long))
    backbone = gpt2.GPT2(a.backbone)
    return gpt2.generate(backbone, a.context_ids, prefix, a.template_max_new_tokens, a.no_repeat_ngram,
                                    a.eos)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", required=True)
    p.add_argument("--text-encoder", required=True)
    p.add_argument("--conv-prompt", required=True, help="UniCRS conv KGPrompt state dict (model.pt)")
    p.add_argument("--kg-dir", required=True, help="the KG folder the bundle was converted from")
    p.add_argument("--context-ids", type=ids, required=True)
    p.add_argument("--prompt-ids", type=ids, required=True)
    p.add_argument("--entities", type=ids, default=[])
    p.add_argument("--template-max-new-tokens", type=int, default=50)
    p.add_argument("--generator")
    p.add_argument("--generator-ids", type=ids)
    p.add_argument("--max-new-tokens", type=int, default=150)
    p.add_argument("--no-repeat-ngram", type=int, default=3)
    p.add_argument("--eos", type=int, default=50256)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    with torch.no_grad():
        result = {"template": template(a)}
        if a.generator:
            if not a.generator_ids:
                p.error("--generator needs --generator-ids")
            generator = gpt2.GPT2(a.generator)
            result["reply"] = gpt2.generate(generator, a.generator_ids, None, a.max_new_tokens,
                                                       a.no_repeat_ngram, a.eos)
    with open(a.out, "w") as f:
        json.dump(result, f)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
