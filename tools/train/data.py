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

# Cue phrases per label, matched as whole words/phrases in the lower-cased turn. They are this
# project's own lists, written for ReDial's seekers (see models/README.md).
CUES = {
    "like": ["love", "loved", "loves", "like", "liked", "likes", "enjoy", "enjoyed", "favorite", "favourite",
             "fan of", "big fan", "into", "great movie", "awesome", "amazing", "good one", "really good"],
    "curious": ["?", "any suggestions", "suggest", "recommend", "recommendation", "looking for", "what is",
                "what's", "have you seen", "have you", "any ideas", "can you", "could you", "what about",
                "is it", "tell me"],
    "happy": ["haha", "hahaha", "lol", ":)", ":-)", ":d", "fun", "funny", "excited", "glad", "yay", "happy",
              "cool", "nice", "perfect", "great"],
    "grateful": ["thank", "thanks", "thank you", "thx", "appreciate", "appreciated", "helpful"],
    "negative": ["hate", "hated", "don't like", "didn't like", "do not like", "did not like", "not a fan",
                 "boring", "bad", "worst", "awful", "terrible", "not really", "don't care", "too scary",
                 "disappointed", "disappointing", "dislike", "not into", "sad", "annoying"],
    "neutral": ["hi", "hello", "hey", "bye", "goodbye", "i'm looking", "my name"],
    "nostalgia": ["when i was", "as a kid", "childhood", "growing up", "grew up", "classic", "classics",
                  "old movie", "old movies", "remember", "years ago", "back in the", "used to", "80s", "90s",
                  "70s", "oldie", "nostalgic"],
    "agreement": ["yes", "yeah", "yep", "sure", "ok", "okay", "sounds good", "agree", "definitely", "absolutely",
                  "of course", "right", "true", "exactly", "i will", "i'll check", "will do", "good idea",
                  "i'll watch", "i will watch", "sounds great"],
    "surprise": ["wow", "really?", "oh", "no way", "didn't know", "did not know", "omg", "whoa", "surprised",
                 "surprising", "unexpected", "can't believe"],
}
_CUE_PATTERNS = {label: [re.compile(r"(?<![\w'])" + re.escape(c) + (r"(?![\w'])" if c[-1].isalnum() else ""))
                         for c in cues] for label, cues in CUES.items()}


def weak_emotions(turn, record):
    """9 probabilities for a user turn: each label's cue count (plus the seeker's liked=1 / liked=0
    answers for the movies the turn names, one count each), normalised; "neutral" alone when
    nothing matched."""
    text = turn.text.lower()
    counts = [float(sum(len(p.findall(text)) for p in _CUE_PATTERNS[label])) for label in EMOTIONS]
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
