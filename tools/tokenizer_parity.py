"""Token ids of `ecr tokenize --gguf` against llama.cpp's llama-tokenize, on every utterance of
the shared ReDial dialogs.

    build/venv/bin/python3 tools/tokenizer_parity.py --llamacpp-bin DIR [--ecr build/src/ecr]
        [--data ../shared/data] [--llama2c] [MODEL.gguf ...]

For each model file, every message text of redial/dialogs.jsonl, train_dialogs.jsonl and
test_dialogs.jsonl is tokenized by both, as plain text (control-token text stays characters; no
bos/eos), and the lines whose ids differ are printed with both id lists. llama-tokenize loads the
model once per call, so the lines go to it in one prompt, separated by a control token's text
(<|endoftext|>, </s>, ...) with special-token parsing on: llama.cpp tokenizes the text between control tokens on its
own, so the ids between separators are each line's ids. The few lines that spell a control token
themselves go one call each with --no-parse-special. Prints one summary line per model
("MODEL: N lines, M mismatches") and exits 1 when any line differs.

--llama2c adds data/llama2c's stories260K, converted by tools/convert_llama2c.py (which needs the
`gguf` package: run this with the venv's python) and, where DIR has llama.cpp's
llama-convert-llama2c-to-ggml, compared with what that writes. A MODEL that does not exist is skipped with a
message. Exit status 77 (ctest's "skipped") when DIR has no llama-tokenize.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

SKIP = 77


def utterances(data):
    lines = []
    for name in ("dialogs.jsonl", "train_dialogs.jsonl", "test_dialogs.jsonl"):
        with open(os.path.join(data, "redial", name), encoding="utf-8") as f:
            for row in f:
                if row.strip():
                    lines += [m["text"] for m in json.loads(row)["messages"]]
    return lines


def llama_tokenize(binary, model, text, parse_special, tmp):
    path = os.path.join(tmp, "prompt.txt")
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    cmd = [binary, "-m", model, "-f", path, "--ids", "--log-disable", "--no-bos"]
    if not parse_special:
        cmd.append("--no-parse-special")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.rindex("["):])


def ecr_tokenize(ecr, model, lines, tmp):
    path = os.path.join(tmp, "lines.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps({"text": line}) + "\n")
    out = subprocess.run([ecr, "tokenize", "--gguf", model, "--input", path], capture_output=True, text=True)
    rows = [json.loads(r) for r in out.stdout.splitlines()]
    return [r.get("ids", r.get("error")) for r in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llamacpp-bin", default=os.environ.get("LLAMACPP_BIN", ""))
    ap.add_argument("--ecr", default="build/src/ecr")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--show", type=int, default=5, help="mismatching lines to print per model")
    ap.add_argument("--llama2c", action="store_true", help="also data/llama2c's stories260K, converted")
    ap.add_argument("models", nargs="*")
    args = ap.parse_intermixed_args()
    binary = os.path.join(args.llamacpp_bin, "llama-tokenize")
    if not args.llamacpp_bin or not os.path.exists(binary):
        print("skipped: no llama-tokenize in --llamacpp-bin / $LLAMACPP_BIN (a llama.cpp build's bin folder)")
        return SKIP
    lines = utterances(args.data)
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        models = []
        for model in args.models:
            if os.path.exists(model):
                models.append(model)
            else:
                print("%s: absent, skipped" % model)
        if args.llama2c:
            src = os.path.join(args.data, "llama2c")
            out = os.path.join(tmp, "stories260K.gguf")
            convert = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "convert_llama2c.py"),
                       "--model", os.path.join(src, "stories260K.bin"),
                       "--tokenizer", os.path.join(src, "tok512.bin"), "--out", out]
            # With llama.cpp's own converter at hand, its file must hold the same vocab and weights.
            theirs_converter = os.path.join(args.llamacpp_bin, "llama-convert-llama2c-to-ggml")
            if os.path.exists(theirs_converter):
                theirs = os.path.join(tmp, "stories260K.llamacpp.gguf")
                subprocess.run([theirs_converter, "--copy-vocab-from-model", os.path.join(src, "tok512.bin"),
                                "--llama2c-model", os.path.join(src, "stories260K.bin"),
                                "--llama2c-output-model", theirs], check=True, capture_output=True)
                convert += ["--compare", theirs]
            if subprocess.run(convert).returncode != 0:
                failed = True
            models.append(out)
        for model in models:
            ours = ecr_tokenize(args.ecr, model, lines, tmp)
            sep_text, sep_id = control_token(binary, model, tmp)
            batch = [i for i, line in enumerate(lines) if sep_text not in line]
            theirs = [None] * len(lines)
            ids = llama_tokenize(binary, model, sep_text.join(lines[i] for i in batch), True, tmp)
            pieces, current = [], []
            for t in ids:
                if t == sep_id:
                    pieces.append(current)
                    current = []
                else:
                    current.append(t)
            pieces.append(current)
            if len(pieces) != len(batch):
                print("%s: the batch split into %d pieces for %d lines" % (model, len(pieces), len(batch)))
                return 2
            for i, p in zip(batch, pieces):
                theirs[i] = p
            for i in set(range(len(lines))) - set(batch):
                theirs[i] = llama_tokenize(binary, model, lines[i], False, tmp)
            bad = [i for i in range(len(lines)) if ours[i] != theirs[i]]
            print("%s: %d lines, %d mismatches" % (os.path.basename(model), len(lines), len(bad)))
            for i in bad[:args.show]:
                print("  %r\n    ecr:       %s\n    llama.cpp: %s" % (lines[i], ours[i], theirs[i]))
            failed = failed or bool(bad)
    return 1 if failed else 0


def control_token(binary, model, tmp):
    """A control token's text and id: the first of these that llama-tokenize reads as one token."""
    for text in ("<|endoftext|>", "</s>", "<|im_end|>", "<|eot_id|>"):
        ids = llama_tokenize(binary, model, text, True, tmp)
        if len(ids) == 1:
            return text, ids[0]
    raise SystemExit("%s: found no control token to separate lines with" % model)


if __name__ == "__main__":
    sys.exit(main())
