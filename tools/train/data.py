"""ReDial dialogs as the engine reads them (docs/math.md section 2), the training samples of every
stage, and the weak emotion labeler.

Entities come from the engine's own linker (`ecr link --kg DIR`), for the training dialogs
exactly as `ecr eval` links the test dialogs, so training and evaluation see the same entities.
Turns, texts and contexts follow src/dialog: consecutive messages of one sender form a turn,
`@<id>` becomes the title, whitespace collapses, HTML entities are decoded.
"""

import html
import json
import os
import random
import re
import subprocess
from dataclasses import dataclass, field

from .text import EOS, R_CLS, R_SEP, roberta_ids

EMOTIONS = ["like", "curious", "happy", "grateful", "negative", "neutral", "nostalgia", "agreement", "surprise"]
PAD_EMOTION = 9
CONTEXT_TOKENS = 200   # GPT-2 context (docs/math.md section 2)
PROMPT_TOKENS = 199    # RoBERTa context before <s>
MAX_ENTITIES = 32
# ECR's feedback-aware item reweighting (train_rec.py defaults: like_score, dislike_score, notsay_score).
FEEDBACK_WEIGHT = {1: 2.0, 0: 0.3, None: 1.0}
MENTION = re.compile(r"@(\d+)")


def collapse(text):
    return " ".join(text.split())


def redial_text(text, mentions):
    """src/dialog/dialog.cpp redial_text: @<id> -> title, spaces collapsed, HTML entities decoded."""
    def title(m):
        t = mentions.get(m.group(1))
        return collapse(t) if t else m.group(0)
    return html.unescape(collapse(MENTION.sub(title, text)))


def masked_text(text, mentions):
    """The template target of UniCRS: every @<id> movie becomes <movie>."""
    return html.unescape(collapse(MENTION.sub(lambda m: "<movie>" if mentions.get(m.group(1)) else m.group(0), text)))


@dataclass
class Turn:
    user: bool
    text: str = ""
    template: str = ""          # system turns: the text with <movie> slots
    entities: list = field(default_factory=list)
    items: list = field(default_factory=list)       # recommendable movies this turn mentions
    redial_ids: dict = field(default_factory=dict)  # item -> ReDial movie id (feedback lookup)
    emotions: list = None       # user turns: 9 probabilities, once the classifier has run
    weak: list = None           # user turns: the weak labeler's 9 probabilities


@dataclass
class Dialog:
    id: str
    turns: list
    record: dict


def link(ecr, kg_dir, path):
    """{(dialog index, message index): [(entity id, source, begin, end)]} from `ecr link`."""
    out = subprocess.run([ecr, "link", "--kg", kg_dir, "--dialogs", path], check=True, capture_output=True,
                         text=True).stdout
    found, dialog, last = {}, -1, None
    for line in out.splitlines():
        r = json.loads(line)
        if r["dialog"] != last or r["message"] == 0:
            dialog, last = dialog + 1, r["dialog"]
        found[(dialog, r["message"])] = [(e["id"], e["source"], e["begin"], e["end"]) for e in r["entities"]]
    return found


def read_dialogs(paths, ecr, kg):
    dialogs = []
    for path in paths:
        links = link(ecr, kg.directory, path)
        with open(path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        for d, record in enumerate(records):
            mentions = {k: v for k, v in (record.get("movieMentions") or {}).items() if v}
            seeker = record["initiatorWorkerId"]
            turns = []
            for m, message in enumerate(record["messages"]):
                user = message["senderWorkerId"] == seeker
                if not turns or turns[-1].user != user:
                    turns.append(Turn(user))
                turn = turns[-1]
                text = redial_text(message["text"], mentions)
                turn.text = f"{turn.text} {text}" if turn.text else text
                template = masked_text(message["text"], mentions)
                turn.template = f"{turn.template} {template}" if turn.template else template
                for eid, source, begin, end in links.get((d, m), []):
                    turn.entities.append(eid)
                    if eid in kg.item_set and eid not in turn.items:
                        turn.items.append(eid)
                        if source == "mention":
                            turn.redial_ids[eid] = message["text"][begin + 1:end]
            dialogs.append(Dialog(str(record.get("conversationId", len(dialogs))), turns, record))
    return dialogs


def feedback(record, redial_id):
    """liked of the seeker's answers, else the recommender's report: 1, 0, or None (not said)."""
    for field_name in ("initiatorQuestions", "respondentQuestions"):
        answers = (record.get(field_name) or {}).get(redial_id)
        if isinstance(answers, dict) and isinstance(answers.get("liked"), int):
            return answers["liked"] if answers["liked"] in (0, 1) else None
    return None


# --- contexts (docs/math.md section 2) ----------------------------------------------------------------------

def context_turns(turns):
    return ([Turn(True)] if turns and not turns[0].user else []) + list(turns)


def gpt2_context(tok, turns, limit=CONTEXT_TOKENS):
    ids = []
    for t in context_turns(turns):
        if t.text:
            ids += tok.encode(("User: " if t.user else "System: ") + t.text) + [EOS]
    return ids[-limit:]


def roberta_context(tok, turns, limit=PROMPT_TOKENS):
    ids = []
    for t in context_turns(turns):
        if t.text:
            ids += roberta_ids(tok.encode(("User: " if t.user else "System: ") + t.text)) + [R_SEP]
    return [R_CLS] + ids[-limit:]


def select_emotions(probs):
    """Labels over 0.1, strongest first (ties: lower id), at most 3, padded with id 9 / prob 0."""
    if probs is None:
        return [PAD_EMOTION] * 3, [0.0] * 3
    ranked = sorted(((-p, i) for i, p in enumerate(probs) if p > 0.1))[:3]
    ids = [i for _, i in ranked] + [PAD_EMOTION] * (3 - len(ranked))
    ps = [-p for p, _ in ranked] + [0.0] * (3 - len(ranked))
    return ids, ps


def context_entities(turns, limit=MAX_ENTITIES):
    """(entity, emotion ids, emotion probs) of all turns, newest `limit`: a user turn's entities
    take its emotions, a system turn's the next user turn's (none when there is none yet)."""
    out = []
    for k, t in enumerate(turns):
        if t.user:
            emotions = t.emotions
        else:
            later = [u for u in turns[k + 1:] if u.user]
            emotions = later[0].emotions if later else None
        ids, probs = select_emotions(emotions)
        out += [(e, ids, probs) for e in t.entities]
    return out[-limit:]


# --- the weak emotion labeler ---------------------------------------------------------------------

# Cue phrases per label, matched as whole words/phrases in the lower-cased turn, each with a
# weight: thanks and the marked feelings (surprise, nostalgia, negative) outweigh the everyday
# "like" / "great" / "?" they often come with. They are this project's own lists, written for
# movie-chat seekers, tuned on tools/train/emotion_dev.jsonl and on the misses among the 40 ReDial
# turns of emotion_sample.json (greetings, "great"); emotion_eval.jsonl is for reporting only.
CUES = {
    "like": (1.0, ["love", "loved", "loves", "adore", "adored", "like", "liked", "likes", "enjoy", "enjoyed",
                   "enjoys", "favorite", "favorites", "favourite", "fan of", "big fan", "huge fan", "i'm into",
                   "am into", "really into", "my thing", "great movie", "great film", "masterpiece", "amazing",
                   "awesome", "brilliant", "good one", "really good", "so good", "the best", "works for me"]),
    "curious": (1.0, ["?", "any suggestions", "suggest", "recommend", "recommendation", "what is", "what's",
                      "who", "which", "how", "have you seen", "do you know", "can you", "could you",
                      "what about", "tell me", "wonder", "anything similar"]),
    "happy": (1.0, ["haha", "hahaha", "lol", ":)", ":-)", ":d", "fun", "funny", "hilarious", "excited",
                    "exciting", "thrilled", "glad", "yay", "hooray", "happy", "cheerful", "good mood",
                    "great mood", "made my day", "can't wait", "great", "great day", "cool", "nice", "perfect"]),
    "grateful": (2.0, ["thank", "thanks", "thank you", "thx", "appreciate", "appreciated", "helpful", "grateful",
                       "cheers for", "owe you"]),
    "negative": (1.5, ["hate", "hated", "dislike", "disliked", "not a fan", "boring", "bored", "bad", "worst",
                       "awful", "terrible", "horrible", "not really", "don't care", "too scary", "disappointed",
                       "disappointing", "disappointment", "sad", "lonely", "depressed", "upset", "stressed",
                       "tired", "angry", "annoying", "annoyed", "ugh", "meh", "can't stand", "waste of time",
                       "feeling down", "feel down", "a bit down", "miserable", "cheering up"]),
    "neutral": (1.0, ["hi", "hello", "hey", "bye", "goodbye", "good evening", "good morning", "my name",
                      "looking for"]),
    "nostalgia": (1.5, ["when i was", "as a kid", "being a kid", "childhood", "growing up", "grew up", "classic",
                        "classics", "old movie", "old movies", "remember", "memories", "years ago", "back in the",
                        "used to", "80s", "90s", "70s", "oldie", "nostalgic", "takes me back", "take me back",
                        "brings back", "reminds me", "good old days", "old days", "miss the"]),
    "agreement": (1.0, ["yes", "yeah", "yep", "yup", "sure", "ok", "okay", "sounds good", "sounds great",
                        "sounds like a plan", "agree", "agreed", "definitely", "absolutely", "of course",
                        "you're right", "that's right", "true", "exactly", "i will", "i'll check", "will do",
                        "good idea", "i'll watch", "i'll give it", "i think so", "fair enough", "let's go with"]),
    "surprise": (1.5, ["wow", "really?", "no way", "didn't know", "did not know", "no idea", "omg", "oh my",
                       "whoa", "surprise", "surprised", "surprising", "shocked", "unexpected", "can't believe",
                       "never expected", "never would have", "never noticed", "seriously?", "crazy"]),
}
# Word edges only where the cue has a word character there ("?" and ":)" follow words directly).
_CUE_PATTERNS = {label: [re.compile((r"(?<![\w'])" if c[0].isalnum() else "") + re.escape(c) +
                                    (r"(?![\w'])" if c[-1].isalnum() else "")) for c in cues]
                 for label, (_, cues) in CUES.items()}
# Under a negator a liking or a good mood turns negative ("did not like it", "not funny"), a
# complaint stops counting ("not bad", "not too scary") and agreement stops too ("not sure").
NEGATED = {"like": "negative", "happy": "negative", "negative": None, "agreement": None}
NEGATORS = {"not", "no", "never", "don't", "didn't", "doesn't", "isn't", "wasn't", "aren't", "won't", "can't",
            "cannot", "hardly", "dont", "didnt", "wasnt"}
# "like" that compares or requests rather than likes: "I'd like", "feels like", "movies like X".
NOT_LIKING = {"would", "i'd", "we'd", "feel", "feels", "felt", "look", "looks", "sound", "sounds", "seem",
              "seems", "something", "anything", "movies", "films", "ones", "just", "more", "stuff", "things"}
INTENSIFIERS = {"so", "really", "very", "such", "huge", "totally", "absolutely", "truly"}
_CLAUSE = re.compile(r"[,.;!?]| but ")
# Greetings that are questions in form only ("hello, how are you?"): neither curious nor cues.
_GREETING = re.compile(r"\bhow (are|r) (you|u)( doing)?\b\s*\??|\bhow's it going\b\s*\??|\bhow is it going\b\s*\??")


def _words_before(text, at, n):
    return _CLAUSE.split(text[:at])[-1].split()[-n:]


def weak_emotions(turn, record):
    """9 probabilities for a user turn: each label's weighted cue count (a cue after an intensifier
    counts 1.5 times, "?" at most once, negated cues as NEGATED says), plus the seeker's liked=1 /
    liked=0 answers for the movies the turn names, one count each; normalised. "neutral" alone
    when nothing else matched."""
    text = turn.text.lower().replace("\u2019", "'")
    text = _GREETING.sub(" ", text)
    counts = [0.0] * 9
    for label, (_, cues) in CUES.items():
        for cue, pattern in zip(cues, _CUE_PATTERNS[label]):
            for m in pattern.finditer(text):
                before = _words_before(text, m.start(), 3)
                if label == "like" and cue in ("like", "likes") and before and before[-1] in NOT_LIKING:
                    continue
                target = label
                if label in NEGATED and NEGATORS & set(before):
                    target = NEGATED[label]
                    if target is None:
                        continue
                boost = 1.5 if before and before[-1] in INTENSIFIERS else 1.0
                counts[EMOTIONS.index(target)] += CUES[target][0] * boost
                if cue == "?":
                    break
    for item, redial_id in turn.redial_ids.items():
        liked = feedback(record, redial_id)
        if liked == 1:
            counts[EMOTIONS.index("like")] += 1
        elif liked == 0:
            counts[EMOTIONS.index("negative")] += 1
    if not any(counts[i] for i in range(9) if EMOTIONS[i] != "neutral"):
        return [1.0 if e == "neutral" else 0.0 for e in EMOTIONS]
    counts[EMOTIONS.index("neutral")] = 0.0
    total = sum(counts)
    return [c / total for c in counts]


# --- samples of each stage -------------------------------------------------------------------------

def rec_samples(dialogs):
    """(dialog, turn index, gold item, loss weight): every system turn's recommendable movies,
    the dialog before it as context (as `ecr eval` builds its samples)."""
    out = []
    for d in dialogs:
        for t, turn in enumerate(d.turns):
            if t == 0 or turn.user:
                continue
            for item in turn.items:
                liked = feedback(d.record, turn.redial_ids[item]) if item in turn.redial_ids else None
                out.append((d, t, item, FEEDBACK_WEIGHT[liked]))
    return out


def split(items, fraction, seed):
    items = list(items)
    random.Random(seed).shuffle(items)
    n = max(1, int(len(items) * fraction)) if len(items) > 1 else 0
    return items[n:], items[:n]
