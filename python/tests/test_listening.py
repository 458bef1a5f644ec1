"""What the recommender listens to, through Python on the shipped model: movies the dialog named
stay out of the ranking unless asked, the feedback read comes back as ecr.Feedback, each item's
reasons as ecr.Reason, and all of it is what `ecr recommend --json` says. Skips while the model is
not there."""

import dataclasses

import pytest

import ecr
from conftest import cli_json
from test_recommender import feedback_as_json, item_as_json

SLEEPLESS = {"turns": [
    {"role": "user", "text": "I loved Notting Hill and Pretty Woman"},
    {"role": "system", "text": "You might like Sleepless in Seattle (1993)"},
    {"role": "user", "text": "I already saw that one and I did not like it. I feel sad today."}]}


@pytest.fixture(scope="module")
def recommender(shipped):
    return ecr.Recommender.load()


def test_named_movies_stay_out_and_the_feedback_is_read(recommender):
    rec = recommender.recommend(SLEEPLESS, top_k=50)
    named = {e.id for t in rec.turns for e in t.entities}
    graph = recommender.graph
    assert graph.entity_id("Sleepless in Seattle (1993)") in named
    assert not named & {i.id for i in rec.items}
    paper = ecr.Recommender.load(exclude_mentioned=False, feedback_strength=0).recommend(SLEEPLESS, top_k=50)
    assert named & {i.id for i in paper.items}  # the model alone brings them back

    last = rec.feedback[-1]
    assert isinstance(last, ecr.Feedback)
    assert (last.name, last.polarity, last.cue, last.turn, last.referred_back) == (
        "Sleepless in Seattle (1993)", "disliked", "not like", 2, True)
    assert all(f.polarity == "liked" for f in rec.feedback[:-1])


def test_reasons_are_dataclasses_and_match_the_tool(shipped, recommender):
    dialog = {"turns": [{"role": "user", "text": "I loved Sleepless in Seattle (1993) and anything with Tom Hanks"}]}
    rec = recommender.recommend(dialog, top_k=10)
    reasons = [r for i in rec.items for r in i.reasons]
    assert reasons and all(isinstance(r, ecr.Reason) for r in reasons)
    assert {r.source_name for r in reasons} <= {"Sleepless in Seattle (1993)", "Tom Hanks"}
    explained = [i for i in rec.items if i.reasons]
    # One sentence per source, the strongest reason's source named.
    assert all(i.reasons[0].source_name in i.explanation and i.explanation.endswith(".") for i in explained)
    assert dataclasses.asdict(rec.items[0])["reasons"] == tuple(dataclasses.asdict(r) for r in rec.items[0].reasons)

    want = cli_json("recommend", "--bundle", shipped, "--top-k", 10, dialog=dialog)
    assert [item_as_json(i) for i in rec.items] == want["items"]
    assert feedback_as_json(rec.feedback) == want["feedback"]

    with pytest.raises(ecr.ConfigError):
        ecr.Recommender.load(feedback_strength=-1)
