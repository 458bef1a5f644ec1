"""The shipped model (models/ecr-redial-small.ecr) through Python, where it exists: load() with no
path finds it, and its recommendations and reply are the C++ library's (how good they are is
tests/test_shipped_model.cpp's to judge). Skips while the model is not there."""

import pytest

import ecr
from conftest import cli_json

HORROR_FAN = {"turns": [{"role": "user", "text": "I love horror movies like The Shining"}]}


@pytest.fixture(scope="module")
def recommender(shipped):
    return ecr.Recommender.load()


def test_load_without_a_path_finds_the_shipped_model(shipped, recommender):
    assert recommender.bundle.label.endswith(shipped.name)
    assert not ecr.Bundle.open().untrained


def test_the_shipped_model_recommends_and_replies_as_the_cpp_library(shipped, recommender):
    rec = recommender.recommend(HORROR_FAN, top_k=10, all_scores=True)
    want = cli_json("recommend", "--bundle", shipped, "--top-k", 10, "--all-scores", dialog=HORROR_FAN)
    assert [(i.id, i.name, i.score) for i in rec.items] == [(i["id"], i["name"], i["score"]) for i in want["items"]]
    assert rec.all_scores.tolist() == want["all_scores"]

    response = ecr.Responder.load(recommender=recommender, generator="gpt2").respond(HORROR_FAN)
    want = cli_json("respond", "--generator", "gpt2", "--bundle", shipped, dialog=HORROR_FAN)
    assert response.text == want["reply"] and response.reply_ids.tolist() == want["reply_ids"]

