"""What the library returns, as frozen dataclasses (the fields of include/ecr/recommender.hpp and
responder.hpp under their Python names). The extension module builds them; nothing here runs a
model. Token ids and scores are numpy arrays; everything else is plain Python.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

# __slots__ keep the records small; dataclass makes them from Python 3.10 on, and 3.9 goes without.
_SLOTS = {"slots": True} if sys.version_info >= (3, 10) else {}


@dataclass(frozen=True, **_SLOTS)
class Emotion:
    """One emotion label as the prompt took it (probability over 0.1, at most 3 a turn)."""

    label: str
    prob: float


@dataclass(frozen=True, **_SLOTS)
class Reason:
    """Why an item is recommended: a link to an entity the user liked or mentioned (source).
    kind "has": the item is linked by `relation` to the source itself (a person, a genre);
    "shares": the item and the source movie are both linked by `relation` to `via`;
    "cooccurrence": they are talked about together (weight: the co-occurrence matrix entry)."""

    kind: str
    source: int
    source_name: str
    source_liked: bool
    relation: str
    via: int
    via_name: str
    weight: float
    text: str


@dataclass(frozen=True, **_SLOTS)
class Feedback:
    """What a user turn said about an entity: polarity "liked", "disliked" or "seen", the cue
    words that decided it, the turn's index, and whether the turn referred back to the movies of
    the system turn before it ("I did not like it")."""

    id: int
    name: str
    polarity: str
    cue: str
    turn: int
    referred_back: bool


@dataclass(frozen=True, **_SLOTS)
class Item:
    """A ranked KG entity: its id, display name and score z . E[id] plus `feedback`, the term the
    feedback rule added; for recommended items, the reasons (strongest first) and one sentence
    made of them."""

    id: int
    name: str
    score: float
    feedback: float = 0.0
    reasons: tuple[Reason, ...] = ()
    explanation: str = ""


@dataclass(frozen=True, **_SLOTS)
class Entity:
    """An entity found in a turn: byte offsets [begin, end) into the turn's UTF-8 text (0, 0 for
    ids the host gave) and where it came from: "mention" (@id), "text" (a written name) or "host"."""

    id: int
    name: str
    begin: int
    end: int
    source: str


@dataclass(frozen=True, **_SLOTS)
class Turn:
    """A turn of a dialog as the host gives it (ecr.Dialog.turns)."""

    role: str
    text: str
    entities: tuple[int, ...] = ()
    emotions: Optional[dict[str, float]] = None


@dataclass(frozen=True, **_SLOTS)
class TurnAnalysis:
    """What the Recommender made of one turn (after merging consecutive turns of one role).

    emotions: a probability per label (the host's or the classifier's), None for system turns
    and unlabelled ones; emotions_from: "host", "classifier" or None; selected: the labels the
    prompt used."""

    role: str
    text: str
    entities: tuple[Entity, ...]
    emotions: Optional[dict[str, float]]
    emotions_from: Optional[str]
    selected: tuple[Emotion, ...]


@dataclass(frozen=True, **_SLOTS)
class PromptEntity:
    """A context entity of the rec prompt, with the emotions of the user's reaction to it."""

    id: int
    emotions: tuple[Emotion, ...]


@dataclass(frozen=True, **_SLOTS, eq=False)
class Recommendation:
    """Recommender.recommend's answer: items best first, the analysed turns, the context entities
    ranked by affinity, the user's latest emotions, and the inputs as the models saw them.
    all_scores (every entity's score) is there when asked for."""

    items: list[Item]
    turns: list[TurnAnalysis]
    context_entities: list[Item]
    user_emotions: tuple[Emotion, ...]
    emotion_fusion: bool
    prompt_entities: list[PromptEntity]
    context_ids: np.ndarray
    prompt_ids: np.ndarray
    all_scores: Optional[np.ndarray] = None
    # The library's own object, which Responder.respond takes back without a copy.
    _native: object = field(default=None, repr=False)
    # What the user turns said about the entities they talk about.
    feedback: tuple[Feedback, ...] = ()


@dataclass(frozen=True, **_SLOTS)
class Knowledge:
    """A KG triple the reply was grounded on."""

    movie: str
    relation: str
    entity: str

    @property
    def text(self) -> str:
        return f"{self.movie}'s {self.relation} is {self.entity}"


@dataclass(frozen=True, **_SLOTS, eq=False)
class Response:
    """Responder.respond's answer: the reply and what grounded it. template is the backbone's
    first sentence with <movie> slots, first_sentence the same with the items' names; prompt_text
    is the generator's prompt byte for byte (the LLM's: its chat prompt). generator says who wrote
    the reply, "gpt2" or "llm" (which writes no template). recommendation is the one the reply is about."""

    text: str
    template: str
    first_sentence: str
    items: list[Item]
    review_entities: list[str]
    knowledge: list[Knowledge]
    prompt_text: str
    user_emotions: tuple[Emotion, ...]
    template_input_ids: np.ndarray
    conv_prompt_ids: np.ndarray
    conv_entities: np.ndarray
    template_ids: np.ndarray
    prompt_ids: np.ndarray
    reply_ids: np.ndarray
    recommendation: Optional[Recommendation] = None
    generator: str = "gpt2"


@dataclass(frozen=True, **_SLOTS)
class TensorInfo:
    """A row of a bundle's tensor table (docs/format.md)."""

    name: str
    dtype: str
    codec: str
    shape: tuple[int, ...]
    offset: int
    stored_size: int
    crc32: int


__all__ = ["Emotion", "Reason", "Feedback", "Item", "Entity", "Turn", "TurnAnalysis", "PromptEntity", "Recommendation", "Knowledge",
           "Response", "TensorInfo"]
