"""The reply-quality report of issue 23 (docs/llm-replies.md): ECR's replies to 50 dialogs of the
official ReDial test split, each checked on what a reader needs from a recommendation reply.

    python3 -m tools.reply_report [--ecr build/src/ecr] [--generator llm|gpt2] [--llm FILE.gguf]
                                  [--dialogs N] [--json OUT.json] [--markdown OUT.md]
    python3 -m tools.reply_report --rescore OUT.json      # the metrics again, on saved replies

The dialogs: the test split's dialogs in file order; each is cut before its first recommender
turn that names a movie and follows a seeker turn (the moment ECR recommends), and the first N
(default 50) with such a turn are kept. Consecutive messages of one worker are one turn. Each
goes through `ecr respond --json` (one process a dialog), and the reply is checked:

    title      the recommended movie's title (its year optional) is in the reply
    length     12 to 120 words
    english    at least 85% of its words are dictionary English (see `english_fraction`)
    sentence   it ends a sentence (. ! ? or an ellipsis, maybe inside a closing quote or bracket)
    no_repeat  no word 4-gram occurs twice in it
    fact       it names a retrieved fact of that movie (a person, genre or review entity the JSON
               says grounded it); `fact_generated` counts only facts named after the words the
               engine itself opened the reply with, so that the model's own use of them shows
    new_movie  the movie it recommends is not one the dialog already named; `no_earlier_movie`
               also asks that its text does not name such a movie again (the model's own words
               often suggest one: "You might want to check out The Holiday (2006)")
and over all replies, Dist-2 (distinct word bigrams / all word bigrams). The issue's targets:
every reply passes title, length, english, sentence, no_repeat and new_movie; at least 70% pass
fact; Dist-2 >= 0.5.

The dictionary is Debian's wamerican (/usr/share/dict/words, tools/install_deps.sh), compared
case-insensitively, with a final possessive 's taken off. Beside it only the names of THIS reply's
movie and of the facts that grounded it count as English (a title or a star's name is no
dictionary word, and the reply was asked to use them); the bundle's other entity names do not,
so an invented name counts against the reply. Numbers are not words (years are left out).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DICTIONARY = Path("/usr/share/dict/words")

MIN_WORDS, MAX_WORDS = 12, 120
ENGLISH_SHARE = 0.85
FACT_SHARE = 0.70
DIST2_TARGET = 0.5

# A word: letters, maybe with inner apostrophes or hyphens ("don't", "heart-warming").
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")


def words(text):
    """The reply's words, as written (numbers and punctuation left out)."""
    return _WORD.findall(text)


def lower_words(text):
    return [w.lower().replace("\u2019", "'") for w in words(text)]


def bare_title(name):
    """ "Pretty Woman (1990)" -> "Pretty Woman": the year is optional in a reply."""
    return re.sub(r"\s+", " ", _YEAR.sub("", name)).strip()


def norm_title(name):
    return " ".join(lower_words(bare_title(name)))


def contains_phrase(text, phrase):
    """Whether `phrase` occurs in `text` as whole words, case-insensitively."""
    target = lower_words(phrase)
    said = lower_words(text)
    if not target:
        return False
    n = len(target)
    return any(said[i : i + n] == target for i in range(len(said) - n + 1))


def title_appears(reply, title):
    return contains_phrase(reply, bare_title(title))


def names_earlier_movie(reply, named_before):
    """The first movie the dialog named that the reply's text names again, or None. A one-word
    title counts only with its year ("It (1990)"): the word alone is too common."""
    for name in named_before:
        bare = bare_title(name)
        year = re.search(r"\((\d{4})\)", name)
        if len(words(bare)) > 1 and re.search(r"(?<!\w)" + re.escape(bare) + r"(?!\w)", reply):
            return name
        if year and re.search(re.escape(bare) + r"\s*\(" + year.group(1) + r"\)", reply):
            return name
    return None


def length_ok(reply):
    return MIN_WORDS <= len(words(reply)) <= MAX_WORDS


def load_dictionary(path=DICTIONARY):
    if not Path(path).exists():
        sys.exit(f"reply_report: {path} is missing: install Debian's wamerican (tools/install_deps.sh)")
    return {line.strip().lower() for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines()}


def english_fraction(reply, dictionary, names=()):
    """The share of the reply's words in `dictionary` or in the given names (this reply's movie
    and facts); 1.0 for a reply without words is avoided by the caller's length check."""
    allowed = set(dictionary)
    for name in names:
        allowed.update(lower_words(name))
    said = lower_words(reply)
    if not said:
        return 0.0

    def known(w):
        if w in allowed:
            return True
        if w.endswith("'s") and w[:-2] in allowed:
            return True
        # A hyphenated word is English when its parts are ("heart-warming").
        return "-" in w and all(p in allowed for p in w.split("-") if p)

    return sum(known(w) for w in said) / len(said)


def ends_sentence(reply):
    return re.search(r"[.!?\u2026][\"'\u201d\u2019)\]]*\s*$", reply) is not None


def repeated_4gram(reply):
    """The first word 4-gram that occurs twice, or None."""
    said = lower_words(reply)
    seen = set()
    for i in range(len(said) - 3):
        gram = tuple(said[i : i + 4])
        if gram in seen:
            return " ".join(gram)
        seen.add(gram)
    return None


def fact_entities(record):
    """The facts that grounded the reply about its recommended movie: the entities of its KG
    facts ("{movie}'s {relation} is {entity}" in the JSON) and its review entities."""
    movie = record["recommended"]
    out = []
    for fact in record.get("knowledge", []):
        prefix = movie + "'s "
        if fact.startswith(prefix):
            relation_entity = fact[len(prefix) :]
            _, sep, entity = relation_entity.partition(" is ")
            if sep:
                out.append(entity)
    out.extend(record.get("review_entities", []))
    return out


def cited_facts(text, entities):
    return [e for e in entities if contains_phrase(text, bare_title(e))]


def dist2(replies):
    grams = []
    for reply in replies:
        said = lower_words(reply)
        grams.extend(zip(said, said[1:]))
    return len(set(grams)) / len(grams) if grams else 0.0


def engine_opening(reply, prompt_text):
    """The words the engine opened the reply with: the longest start of the reply that ends the
    prompt (docs/llm-replies.md, llm_reply_opening); empty for GPT-2."""
    for end in range(len(reply), 0, -1):
        if prompt_text.endswith(reply[:end]):
            return reply[:end]
    return ""


def score(record, dictionary):
    """The per-reply checks of one record (its "reply", "recommended", "named_before",
    "knowledge", "review_entities", "prompt_text")."""
    reply = record["reply"]
    entities = fact_entities(record)
    opening = engine_opening(reply, record.get("prompt_text", ""))
    names = [record["recommended"], *entities]
    said = words(reply)
    return {
        "title": title_appears(reply, record["recommended"]),
        "words": len(said),
        "length": length_ok(reply),
        "english_share": round(english_fraction(reply, dictionary, names), 4),
        "english": english_fraction(reply, dictionary, names) >= ENGLISH_SHARE,
        "sentence": ends_sentence(reply),
        "repeated_4gram": repeated_4gram(reply),
        "no_repeat": repeated_4gram(reply) is None,
        "facts_cited": cited_facts(reply, entities),
        "fact": bool(cited_facts(reply, entities)),
        "fact_generated": bool(cited_facts(reply[len(opening) :], entities)),
        "new_movie": norm_title(record["recommended"]) not in {norm_title(n) for n in record["named_before"]},
        "earlier_movie_named": names_earlier_movie(reply, record["named_before"]),
        "no_earlier_movie": names_earlier_movie(reply, record["named_before"]) is None,
    }


PER_REPLY = ["title", "length", "english", "sentence", "no_repeat", "fact", "fact_generated", "new_movie",
             "no_earlier_movie"]
TARGET = {"title": 1.0, "length": 1.0, "english": 1.0, "sentence": 1.0, "no_repeat": 1.0, "fact": FACT_SHARE,
          "new_movie": 1.0}


def summarize(records):
    n = len(records)
    out = {"replies": n}
    for key in PER_REPLY:
        out[key] = sum(r["checks"][key] for r in records) / n if n else 0.0
    out["dist2"] = dist2([r["reply"] for r in records])
    out["mean_words"] = sum(r["checks"]["words"] for r in records) / n if n else 0.0
    out["passes"] = {k: out[k] >= t for k, t in TARGET.items()}
    out["passes"]["dist2"] = out["dist2"] >= DIST2_TARGET
    return out


# --- the dialogs ---------------------------------------------------------------------------


def redial_text(text, mentions):
    return re.sub(r"@(\d+)", lambda m: " ".join(mentions.get(m.group(1), m.group(0)).split()), text)


def cut_dialog(record):
    """The dialog before its first recommender turn that names a movie and follows a seeker turn,
    as (turns for `ecr respond`, the ids of the movies named before it); None without one."""
    seeker = record["initiatorWorkerId"]
    turns = []
    for m in record["messages"]:
        role = "user" if m["senderWorkerId"] == seeker else "system"
        if turns and turns[-1]["role"] == role:
            turns[-1]["text"] += " " + m["text"]
        else:
            turns.append({"role": role, "text": m["text"]})
    for i, t in enumerate(turns):
        if t["role"] == "system" and i > 0 and turns[i - 1]["role"] == "user" and re.search(r"@\d+", t["text"]):
            named = [mid for turn in turns[:i] for mid in re.findall(r"@(\d+)", turn["text"])]
            return turns[:i], named
    return None


def pick_dialogs(path, count):
    chosen = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            cut = cut_dialog(record)
            if cut is None:
                continue
            turns, named = cut
            mentions = record.get("movieMentions") or {}
            chosen.append({"conversation": record["conversationId"], "turns": turns, "movieMentions": mentions,
                           "named_before": [mentions[m] for m in dict.fromkeys(named) if m in mentions]})
            if len(chosen) == count:
                break
    return chosen


def run_ecr(args, dialog):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"turns": dialog["turns"], "movieMentions": dialog["movieMentions"]}, f)
        path = f.name
    cmd = [args.ecr, "respond", path, "--json", "--generator", args.generator, "--threads", str(args.threads)]
    if args.llm:
        cmd += ["--llm", args.llm]
    if args.bundle:
        cmd += ["--bundle", args.bundle]
    cmd += args.ecr_args.split()
    try:
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        seconds = time.perf_counter() - start
    finally:
        os.unlink(path)
    if done.returncode != 0:
        sys.exit(f"reply_report: {' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout), seconds


def generate(args, dictionary):
    dialogs = pick_dialogs(Path(args.data) / "redial" / "test_dialogs.jsonl", args.dialogs)
    if len(dialogs) < args.dialogs:
        sys.exit(f"reply_report: only {len(dialogs)} test dialogs have a recommender turn to answer")
    records = []
    for i, d in enumerate(dialogs):
        out, seconds = run_ecr(args, d)
        if not out["reply_items"]:
            sys.exit(f"reply_report: conversation {d['conversation']}: the reply names no movie")
        record = {
            "conversation": d["conversation"],
            "dialog": [{"role": t["role"], "text": redial_text(t["text"], d["movieMentions"])} for t in d["turns"]],
            "named_before": d["named_before"],
            "user_emotions": out["user_emotions"],
            "generator": out["generator"],
            "recommended": out["reply_items"][0]["name"],
            "reply": out["reply"],
            "knowledge": out["knowledge"],
            "review_entities": out["review_entities"],
            "prompt_text": out["prompt_text"],
            "seconds": round(seconds, 2),
        }
        record["checks"] = score(record, dictionary)
        records.append(record)
        print(f"[{i + 1}/{len(dialogs)}] {d['conversation']}: {record['reply']}", file=sys.stderr, flush=True)
    return records


# --- output --------------------------------------------------------------------------------


def percent(x):
    return f"{100 * x:.0f}%"


def table(summary, label):
    head = ("| replies | title | 12-120 words | English >= 85% | ends a sentence | no 4-gram repeat | cites a fact "
            "(model-written part) | new movie (text names none named before) | Dist-2 |")
    rule = "| --- " * 9 + "|"
    row = (f"| {label}: {summary['replies']} | {percent(summary['title'])} | {percent(summary['length'])} | "
           f"{percent(summary['english'])} | {percent(summary['sentence'])} | {percent(summary['no_repeat'])} | "
           f"{percent(summary['fact'])} ({percent(summary['fact_generated'])}) | {percent(summary['new_movie'])} "
           f"({percent(summary['no_earlier_movie'])}) | "
           f"{summary['dist2']:.2f} |")
    return "\n".join([head, rule, row])


def markdown(records, summary, label, command):
    lines = [f"# Reply-quality report: {label}", "", f"`{command}`", "", table(summary, label), "",
             "Targets: 100% in every column but the facts (>= 70%), Dist-2 >= 0.5. "
             f"Mean length {summary['mean_words']:.1f} words.", "", "## Failures", ""]
    for r in records:
        failed = [k for k in TARGET if not r["checks"][k]]
        if failed:
            lines.append(f"- {r['conversation']} ({', '.join(failed)}): {r['reply']}")
    lines += ["", "## Replies", ""]
    for r in records:
        user = next(t["text"] for t in reversed(r["dialog"]) if t["role"] == "user")
        emotions = ", ".join(f"{e['label']} {e['prob']:.2f}" for e in r["user_emotions"])
        lines.append(f"- {r['conversation']}: user \"{user}\" ({emotions}) -> **{r['recommended']}**: {r['reply']}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ecr", default=str(ROOT / "build" / "src" / "ecr"), help="the ecr tool")
    p.add_argument("--bundle", help="the bundle (default: ecr's)")
    p.add_argument("--generator", default="llm", choices=["llm", "gpt2", "auto"])
    p.add_argument("--llm", help="the LLM GGUF (default: ecr's, $ECR_LLM)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="the shared data folder (redial/test_dialogs.jsonl)")
    p.add_argument("--dialogs", type=int, default=50)
    p.add_argument("--ecr-args", default="", help="more options for ecr respond (\"--llm-min-new-tokens 0\")")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the replies, their checks and the summary here")
    p.add_argument("--markdown", help="write the table, the failures and every reply here")
    p.add_argument("--rescore", help="score the replies of a JSON this tool wrote, without running ecr")
    args = p.parse_args(argv)

    dictionary = load_dictionary()
    if args.rescore:
        saved = json.loads(Path(args.rescore).read_text(encoding="utf-8"))
        records, label, command = saved["replies"], saved["label"], saved["command"]
        for r in records:
            r["checks"] = score(r, dictionary)
    else:
        records = generate(args, dictionary)
        label = records[0]["generator"] if records else args.generator
        command = "python3 -m tools.reply_report " + " ".join(argv if argv is not None else sys.argv[1:])
    summary = summarize(records)
    print(table(summary, label))
    if args.json:
        Path(args.json).write_text(json.dumps({"label": label, "command": command, "summary": summary,
                                               "replies": records}, indent=1, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    if args.markdown:
        Path(args.markdown).write_text(markdown(records, summary, label, command), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
