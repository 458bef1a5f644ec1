"""GPT-2 byte-level BPE in Python, for the trainer (docs/math.md section 1).

The engine has its own tokenizer (src/text/tokenizer.cpp); this one exists so the trainer can
read the dialogs without the engine, and the trainer's smoke test checks that both agree with
the shared reference tokenization. The RoBERTa side uses the vocabulary that
tools/make_random_checkpoints.py derives from GPT-2's (GPT-2 token i is RoBERTa token i + 4), so
RoBERTa ids are computed from GPT-2 ids instead of from a second BPE pass.
"""

import json
import os
from functools import lru_cache

import regex

# docs/math.md section 1: the pre-split of GPT-2 and its special tokens.
PRE_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
EOS, PAD, MOVIE = 50256, 50257, 50258
GPT2_ADDED = {"<pad>": PAD, "<movie>": MOVIE}
GPT2_VOCAB = 50259
# RoBERTa's id plan (make_random_checkpoints.roberta_vocab).
R_CLS, R_PAD, R_SEP, R_MASK, R_MOVIE = 0, 1, 2, 50264, 50265
ROBERTA_VOCAB = 50266
ROBERTA_OFFSET = 4


def _bytes_to_unicode():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


class Gpt2Tokenizer:
    def __init__(self, vocab_dir):
        with open(os.path.join(vocab_dir, "encoder.json"), encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(os.path.join(vocab_dir, "vocab.bpe"), encoding="utf-8") as f:
            lines = [line for line in f.read().split("\n") if line and not line.startswith("#version")]
        self.ranks = {tuple(line.split()): i for i, line in enumerate(lines)}
        self.decoder = {i: t for t, i in self.encoder.items()}
        self.decoder.update({i: t for t, i in GPT2_ADDED.items()})
        self.byte_chars = _bytes_to_unicode()
        self.char_bytes = {c: b for b, c in self.byte_chars.items()}
        self.specials = {"<|endoftext|>": EOS, **GPT2_ADDED}
        self._special_split = regex.compile("(" + "|".join(regex.escape(s) for s in self.specials) + ")")
        self._bpe = lru_cache(maxsize=200_000)(self._bpe_uncached)

    def _bpe_uncached(self, word):
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, i = min(pairs)
            if rank == 1 << 30:
                break
            first, second = parts[i], parts[i + 1]
            merged, j = [], 0
            while j < len(parts):
                if j + 1 < len(parts) and parts[j] == first and parts[j + 1] == second:
                    merged.append(first + second)
                    j += 2
                else:
                    merged.append(parts[j])
                    j += 1
            parts = merged
        return tuple(self.encoder[p] for p in parts)

    def encode(self, text):
        ids = []
        for piece in self._special_split.split(text):
            if not piece:
                continue
            if piece in self.specials:
                ids.append(self.specials[piece])
                continue
            for word in PRE_SPLIT.findall(piece):
                ids.extend(self._bpe("".join(self.byte_chars[b] for b in word.encode("utf-8"))))
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            token = self.decoder[i]
            out += token.encode("utf-8") if i in (EOS, PAD, MOVIE) else bytes(self.char_bytes[c] for c in token)
        return out.decode("utf-8", errors="replace")


def roberta_ids(gpt2_ids):
    """GPT-2 ids -> the derived RoBERTa vocabulary's ids (<movie> is an added token on both sides)."""
    return [R_MOVIE if i == MOVIE else i + ROBERTA_OFFSET for i in gpt2_ids]
