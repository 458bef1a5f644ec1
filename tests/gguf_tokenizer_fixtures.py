"""Fixtures of tests/test_gguf_tokenizer.cpp, with expectations computed here, independently of ecr.

    python3 gguf_tokenizer_fixtures.py OUT_DIR [SMOLLM2.gguf]

(the venv's python: needs the `gguf` package; `regex` and `jinja2` come from Debian's python3.)
Writes into OUT_DIR:

- bpe.gguf: a byte-level BPE vocab (tokenizer.ggml.model "gpt2", pre "smollm"): the 256 byte
  symbols, merges, two control tokens and a user-defined one; spm.gguf: a SentencePiece vocab
  ("llama"): <unk> <s> </s>, the 256 <0xXX> byte tokens, scored pieces, a control and a
  user-defined token. expect.json gets, per file, each test text's ids read as plain text and
  with control tokens, from the straightforward algorithms below: Python's `regex` with the
  pre-tokenizer patterns and GPT-2's lowest-rank-first merge loop; SentencePiece's repeated
  "merge the adjacent pair whose piece scores highest, leftmost among equals".
- hostile/*.gguf, each breaking one tokenizer key, and hostile.json: [{"file", "error"
  ("format" | "config"), "needle"}].
- chat.json: chat template sources (a canonical one per family, and SmolLM2's own from the file
  when given) with conversations rendered by jinja2 as HuggingFace does (trim_blocks,
  lstrip_blocks, raise_exception): {"templates": [{"name", "family", "source", "bos", "eos",
  "renders": [{"conversation", "add_generation_prompt", "text" | "error"}]}]}.
"""
import json
import os
import sys

import jinja2
import numpy as np
import regex
from gguf import GGUFReader, GGUFWriter

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

TEXTS = [
    "hello world",
    "Hello, World!  It's 2024; 12345 movies.",
    "  leading spaces and trailing  ",
    "line one\nline two\n\n\tindent",
    "caf\u00e9 na\u00efve \u4f60\u597d \U0001F600",
    "<|im_start|>user\nhi<|im_end|>",
    "x<movie>y <|im_end|><|im_end|>",
    "<s>hello</s> <unk>",
    "",
    " ",
    "helloworld hello world hellllo",
]


# --- byte-level BPE ------------------------------------------------------------------------------

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_CHAR = bytes_to_unicode()
BPE_WORDS = ["hello", "world", "Hello", "movies", "line", "two", "one", "indent", "caf\u00e9", "12", "It"]
BPE_CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
BPE_USER = ["<movie>"]


def bpe_vocab():
    tokens = list(BPE_CONTROL) + [BYTE_CHAR[b] for b in range(256)]
    merges = []
    for word in BPE_WORDS + [" " + w for w in BPE_WORDS]:
        symbols = [BYTE_CHAR[b] for b in word.encode()]
        while len(symbols) > 1:  # merge left to right: a chain of merges that builds the word
            pair = (symbols[0], symbols[1])
            if " ".join(pair) not in merges:
                merges.append(" ".join(pair))
            joined = pair[0] + pair[1]
            if joined not in tokens:
                tokens.append(joined)
            symbols = [joined] + symbols[2:]
    tokens += BPE_USER
    types = [3] * len(BPE_CONTROL) + [1] * (len(tokens) - len(BPE_CONTROL) - len(BPE_USER)) + [4] * len(BPE_USER)
    return tokens, types, merges


def bpe_encode(text, tokens, types, merges, control):
    ids = {t: i for i, t in enumerate(tokens)}
    ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
    specials = [t for t, ty in zip(tokens, types) if ty in (3, 4)] if control else []
    out = []
    for part in (regex.split("(" + "|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")", text)
                 if specials else [text]):
        if part in specials:
            out.append(ids[part])
            continue
        # smollm: each \p{N} alone, GPT-2's pattern in between
        for stretch in regex.split(r"(\p{N})", part):
            for piece in regex.findall(GPT2_PATTERN, stretch):
                word = [BYTE_CHAR[b] for b in piece.encode()]
                while len(word) > 1:
                    best = min(range(len(word) - 1), key=lambda i: (ranks.get((word[i], word[i + 1]), 1 << 30), i))
                    if (word[best], word[best + 1]) not in ranks:
                        break
                    word = word[:best] + [word[best] + word[best + 1]] + word[best + 2:]
                out += [ids[w] for w in word]
    return out


# --- SentencePiece BPE ---------------------------------------------------------------------------

SPACE = "\u2581"
SPM_PIECES = {  # piece -> score; higher merges first
    SPACE: -1.0, "h": -2.0, "e": -2.0, "l": -2.0, "o": -2.0, "w": -2.0, "r": -2.0, "d": -2.0, "n": -2.0,
    "i": -2.0, "t": -2.0, "\u00e9": -3.0, "c": -2.0, "a": -2.0, "f": -2.0,
    "he": -5.0, "ll": -4.0, "llo": -6.0, "hello": -7.0, SPACE + "h": -8.0, SPACE + "hello": -3.5,
    "or": -4.5, "ld": -4.0, "wor": -6.5, "world": -6.0, SPACE + "w": -9.0, SPACE + "world": -4.2,
    "in": -5.5, "ne": -5.5, "line": -6.2, SPACE + "line": -7.7, "caf": -7.0, "caf\u00e9": -7.1,
    SPACE + SPACE: -9.5, "lo": -4.0,
}


def spm_vocab():
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + list(SPM_PIECES) + ["<|user|>", "<movie>"]
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + list(SPM_PIECES.values()) + [0.0, 0.0]
    types = [2, 3, 3] + [6] * 256 + [1] * len(SPM_PIECES) + [3, 4]
    return tokens, scores, types


def spm_encode(text, tokens, scores, types, control):
    normal = {t: i for i, t in enumerate(tokens) if types[i] == 1}
    specials = [t for t, ty in zip(tokens, types) if ty in (2, 3, 4)] if control else []
    ids = {t: i for i, t in enumerate(tokens)}
    out = []
    after_control = True
    parts = (regex.split("(" + "|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")", text)
             if specials else [text])
    for part in parts:
        if part in specials:
            out.append(ids[part])
            after_control = True
            continue
        if not part:
            continue
        s = ((" " if after_control else "") + part).replace(" ", SPACE)
        after_control = False
        symbols = list(s)
        while True:
            best = None
            for i in range(len(symbols) - 1):
                joined = symbols[i] + symbols[i + 1]
                if joined in normal and (best is None or scores[normal[joined]] > best[0]):
                    best = (scores[normal[joined]], i)
            if best is None:
                break
            i = best[1]
            symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
        for sym in symbols:
            if sym in normal:
                out.append(normal[sym])
            else:
                out += [ids["<0x%02X>" % b] for b in sym.encode()]
    return out


# --- files ---------------------------------------------------------------------------------------

def write(path, model, tokens, types=None, scores=None, merges=None, pre=None, extra=None, skip=()):
    w = GGUFWriter(path, "llama")
    if "model" not in skip:
        w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    if "tokens" not in skip:
        w.add_token_list(tokens)
    if types is not None:
        w.add_token_types(types)
    if scores is not None:
        w.add_token_scores(scores)
    if merges is not None:
        w.add_token_merges(merges)
    ids = {"bos": 1, "eos": 2, "unk": 0}
    for role, value in ids.items():
        if role not in skip:
            getattr(w, "add_%s_token_id" % role)(value)
    for key, (kind, value) in (extra or {}).items():
        getattr(w, "add_" + kind)(key, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()


def chat_fixtures(smollm2):
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)
    env.globals["raise_exception"] = raise_exception
    templates = [
        ("chatml", "chatml", "<s>", "</s>",
         "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
         "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"),
        ("llama2", "llama2", "<s>", "</s>",
         "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
         "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
         "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
         "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
         "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
         "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"),
        ("llama3", "llama3", "<|begin_of_text|>", "<|eot_id|>",
         "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + "
         "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
         "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"),
        ("zephyr", "zephyr", "<s>", "</s>",
         "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
         "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
         "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
         "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"),
        ("mistral", "mistral", "<s>", "</s>",
         "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
         "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
         "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
         "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"),
    ]
    if smollm2:
        r = GGUFReader(smollm2)
        field = r.fields["tokenizer.chat_template"]
        source = bytes(field.parts[field.data[0]]).decode()
        tokens = r.fields["tokenizer.ggml.tokens"]
        token = lambda key: bytes(tokens.parts[tokens.data[int(r.fields[key].parts[r.fields[key].data[0]][0])]]).decode()
        templates.append(("smollm2", "chatml", token("tokenizer.ggml.bos_token_id"),
                          token("tokenizer.ggml.eos_token_id"), source))
    conversations = [
        [{"role": "user", "content": "I liked The Matrix. Anything like it?"}],
        [{"role": "system", "content": "You recommend movies."}, {"role": "user", "content": " Hi there! \n"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " Try Inception (2010). "},
         {"role": "user", "content": "Seen it, something older?"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"},
         {"role": "assistant", "content": "b"}, {"role": "user", "content": "c\u00e9 \u4f60\u597d"}],
        [{"role": "assistant", "content": "Hello, what do you like?"}, {"role": "user", "content": "Comedies"}],
        [],
    ]
    out = []
    for name, family, bos, eos, source in templates:
        template = env.from_string(source)
        renders = []
        for conversation in conversations:
            for gen in (False, True):
                row = {"conversation": conversation, "add_generation_prompt": gen}
                try:
                    row["text"] = template.render(messages=conversation, add_generation_prompt=gen,
                                                  bos_token=bos, eos_token=eos)
                except (jinja2.exceptions.TemplateError, IndexError) as e:
                    row["error"] = str(e)
                renders.append(row)
        out.append({"name": name, "family": family, "source": source, "bos": bos, "eos": eos, "renders": renders})
    return {"templates": out}


def main():
    out = sys.argv[1]
    smollm2 = sys.argv[2] if len(sys.argv) > 2 and os.path.exists(sys.argv[2]) else None
    os.makedirs(os.path.join(out, "hostile"), exist_ok=True)
    expect = {}

    tokens, types, merges = bpe_vocab()
    write(os.path.join(out, "bpe.gguf"), "gpt2", tokens, types, merges=merges, pre="smollm",
          extra={"tokenizer.ggml.add_bos_token": ("bool", False)})
    expect["bpe"] = [{"text": t, "as_text": bpe_encode(t, tokens, types, merges, False),
                      "as_tokens": bpe_encode(t, tokens, types, merges, True)} for t in TEXTS]

    s_tokens, s_scores, s_types = spm_vocab()
    write(os.path.join(out, "spm.gguf"), "llama", s_tokens, s_types, scores=s_scores)
    expect["spm"] = [{"text": t, "as_text": spm_encode(t, s_tokens, s_scores, s_types, False),
                      "as_tokens": spm_encode(t, s_tokens, s_scores, s_types, True)} for t in TEXTS]
    with open(os.path.join(out, "expect.json"), "w") as f:
        json.dump(expect, f)

    hostile = []

    def bad(name, error, needle, **kw):
        args = dict(model="llama", tokens=s_tokens, types=s_types, scores=s_scores)
        args.update(kw)
        write(os.path.join(out, "hostile", name + ".gguf"), **args)
        hostile.append({"file": "hostile/%s.gguf" % name, "error": error, "needle": needle})

    bad("model_bert", "config", "'bert' is not supported", model="bert")
    bad("no_model", "format", "no key 'tokenizer.ggml.model'", skip=("model",))
    bad("no_tokens", "format", "no key 'tokenizer.ggml.tokens'", skip=("tokens",))
    bad("types_short", "format", "'tokenizer.ggml.token_type' has 10 entries", types=s_types[:10])
    bad("type_out_of_range", "format", "has type 9", types=[9] + s_types[1:])
    bad("scores_short", "format", "'tokenizer.ggml.scores' has 3 entries", scores=s_scores[:3])
    bad("no_scores", "format", "no key 'tokenizer.ggml.scores'", scores=None)
    bad("score_nan", "format", "finite", scores=[float("nan")] + s_scores[1:])
    bad("bos_out_of_range", "format", "'tokenizer.ggml.bos_token_id' is token id 100000",
        skip=("bos",), extra={"tokenizer.ggml.bos_token_id": ("uint32", 100000)})
    bad("bos_wrong_type", "format", "tokenizer.ggml.bos_token_id", skip=("bos",),
        extra={"tokenizer.ggml.bos_token_id": ("int32", 1)})
    bad("add_bos_wrong_type", "format", "tokenizer.ggml.add_bos_token",
        extra={"tokenizer.ggml.add_bos_token": ("uint8", 1)})
    bad("duplicate_token", "format", "the same text as token", tokens=s_tokens[:-1] + ["<s>"])
    bad("byte_token_misspelt", "format", "expected <0xXX>", tokens=s_tokens[:3] + ["<0xZZ>"] + s_tokens[4:])
    bad("tokens_not_strings", "format", "tokenizer.ggml.tokens", skip=("tokens",),
        extra={"tokenizer.ggml.tokens": ("array", [1, 2, 3])})
    bad("empty_vocab", "format", "tokenizer.ggml.tokens", tokens=[], types=[], scores=[], skip=("bos", "eos", "unk"))
    bad("pre_unknown", "config", "'qwen2' is not a pre-tokenizer ecr has", model="gpt2", tokens=tokens, types=types,
        scores=None, merges=merges, pre="qwen2")
    bad("merge_unknown_token", "format", "is not in the vocab", model="gpt2", tokens=tokens, types=types,
        scores=None, merges=merges + ["zz qq"], pre="smollm")
    bad("merge_malformed", "format", "expected two tokens separated by one space", model="gpt2", tokens=tokens,
        types=types, scores=None, merges=merges + ["hello"], pre="smollm")
    bad("no_merges", "format", "no key 'tokenizer.ggml.merges'", model="gpt2", tokens=tokens, types=types,
        scores=None, pre="smollm")
    with open(os.path.join(out, "hostile.json"), "w") as f:
        json.dump(hostile, f)

    with open(os.path.join(out, "chat.json"), "w") as f:
        json.dump(chat_fixtures(smollm2), f)


if __name__ == "__main__":
    main()
