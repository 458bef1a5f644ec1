"""ecr.Responder through Python: the reply, template, knowledge and ids of `ecr respond` on the same
bundle and dialog; streaming yields whole characters that add up to the reply; a stream can stop
early; threads sharing one Responder get the serial reply."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import ecr
from cases import labelled_dialog, no_entity_dialog, plain_dialog
from conftest import cli_json
from test_recommender import feedback_as_json, item_as_json


@pytest.fixture(scope="module")
def responder(tiny):
    return ecr.Responder.load(tiny.bundle, generator="gpt2")


def as_cli_json(response):
    """A Response (with its recommendation) in `ecr respond --json`'s form (src/cli/conversation.cpp)."""
    return {"items": [item_as_json(i) for i in response.recommendation.items],
            "user_emotions": [{"label": e.label, "prob": e.prob} for e in response.recommendation.user_emotions],
            "feedback": feedback_as_json(response.recommendation.feedback),
            "generator": response.generator, "reply": response.text, "template": response.template, "first_sentence": response.first_sentence,
            "reply_items": [{"id": i.id, "name": i.name} for i in response.items],
            "review_entities": response.review_entities, "knowledge": [k.text for k in response.knowledge],
            "prompt_text": response.prompt_text, "template_ids": response.template_ids.tolist(),
            "reply_ids": response.reply_ids.tolist()}


def test_replies_match_the_cpp_library(tiny, responder):
    graph = responder.recommender.graph
    for dialog in (labelled_dialog(graph), plain_dialog(), no_entity_dialog()):
        response = responder.respond(dialog)
        assert isinstance(response, ecr.Response) and isinstance(response.recommendation, ecr.Recommendation)
        want = cli_json("respond", "--generator", "gpt2", "--bundle", tiny.bundle, dialog=dialog)
        assert want.pop("untrained") is True
        got = as_cli_json(response)
        for field in want:
            assert got[field] == want[field], f"{field} differs from `ecr respond`"
        assert len(response.recommendation.items) == 5  # the tool's and the Responder's default top_k
        assert response.prompt_text.endswith("<|endoftext|>")
        assert response.reply_ids.dtype == np.int32

    # Sampled replies too: same seed, same tokens.
    dialog = plain_dialog()
    sampled = ecr.Responder.load(tiny.bundle, generator="gpt2", temperature=0.9, top_p=0.95, seed=11).respond(dialog)
    want = cli_json("respond", "--generator", "gpt2", "--bundle", tiny.bundle, "--temperature", 0.9, "--top-p", 0.95, "--seed", 11,
                    dialog=dialog)
    assert sampled.reply_ids.tolist() == want["reply_ids"] and sampled.text == want["reply"]


def test_respond_takes_a_recommendation_and_shares_the_recommender(tiny, tiny_recommender):
    responder = ecr.Responder.load(recommender=tiny_recommender, generator="gpt2", top_k=3)
    assert responder.recommender.bundle.label == tiny_recommender.bundle.label
    dialog = plain_dialog()
    rec = tiny_recommender.recommend(dialog, top_k=3)
    given = responder.respond(dialog, rec)
    assert given.recommendation is rec
    assert given.items[0] == rec.items[0]
    fresh = responder.respond(dialog)
    assert fresh.text == given.text and fresh.recommendation.items == rec.items
    two = ecr.Responder.load(recommender=tiny_recommender, generator="gpt2", items=2).respond(dialog)
    assert [i.id for i in two.items] == [i.id for i in two.recommendation.items[:2]]
    with pytest.raises(TypeError, match="Recommendation"):
        responder.respond(dialog, recommendation={"items": []})


def test_streaming_yields_whole_characters_that_add_up_to_the_reply(tiny, responder):
    dialog = labelled_dialog(responder.recommender.graph)
    whole = responder.respond(dialog)
    stream = responder.stream(dialog)
    assert isinstance(stream, ecr.ReplyStream)
    pieces = list(stream)
    assert pieces and all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == whole.text == stream.response.text
    assert stream.response.reply_ids.tolist() == whole.reply_ids.tolist()
    assert stream.recommendation.items == whole.recommendation.items
    assert list(stream) == []  # exhausted

    # Random weights sampled at a high temperature write byte tokens that split characters; the
    # pieces still carry only whole ones (a split one would not even decode into a str).
    multibyte = 0
    for seed in range(12):
        sampling = ecr.Responder.load(recommender=responder.recommender, generator="gpt2", temperature=1.5, seed=seed,
                                      no_repeat_ngram=0, max_new_tokens=60)
        stream = sampling.stream(dialog)
        pieces = list(stream)
        text = stream.response.text
        assert "".join(pieces) == text
        for p in pieces:
            p.encode("utf-8")  # no lone surrogates
        multibyte += sum(len(p.encode("utf-8")) > len(p) for p in pieces)
    assert multibyte > 0, "no sampled reply had a character outside ASCII: the check above checked nothing"


def test_a_stream_can_stop_early_and_reports_failures(tiny, responder):
    dialog = plain_dialog()
    whole = responder.respond(dialog)
    with responder.stream(dialog) as stream:
        first = next(stream)
    assert whole.text.startswith(first)
    stopped = stream.response
    assert stopped is None or len(stopped.reply_ids) <= len(whole.reply_ids)
    # An abandoned stream is cleaned up without being read.
    responder.stream(dialog)
    # A request the library refuses raises from the iterator, as the class of its error.
    with pytest.raises(ecr.InputError):
        responder.stream({"turns": [{"role": "user", "text": ""}]}).__next__()
    with pytest.raises(ecr.InputError, match="no turns"):
        responder.respond({"turns": []})


def test_four_threads_share_one_responder(responder):
    dialog = labelled_dialog(responder.recommender.graph)
    want = responder.respond(dialog)

    def stream_once(_):
        return "".join(responder.stream(dialog))

    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: responder.respond(dialog), range(4)))
        streamed = list(pool.map(stream_once, range(4)))
    assert all(r.reply_ids.tolist() == want.reply_ids.tolist() for r in replies)
    assert streamed == [want.text] * 4


def test_responder_options_are_checked(tiny):
    with pytest.raises(ecr.ConfigError, match="no_such_relation"):
        ecr.Responder.load(tiny.bundle, relations=["no_such_relation"])
    with pytest.raises(ecr.InputError, match="top_p"):
        ecr.Responder.load(tiny.bundle, top_p=1.5)
    with pytest.raises(ecr.InputError):
        ecr.Responder.load(tiny.bundle, items=0)


def test_generator_is_chosen_at_load(tiny, responder):
    assert responder.generator == "gpt2"
    assert responder.respond(plain_dialog()).generator == "gpt2"
    with pytest.raises(ecr.IoError, match="missing.gguf"):
        ecr.Responder.load(tiny.bundle, generator="llm", llm="/nonexistent/missing.gguf")
    with pytest.raises(ecr.InputError, match="gpt3"):
        ecr.Responder.load(tiny.bundle, generator="gpt3")


def test_lora_goes_with_the_llm(tiny):
    # "FILE:SCALE" strings and (path, scale) pairs reach ResponderOptions.llm_lora; gpt2 takes none.
    with pytest.raises(ecr.ConfigError, match=r"\(/nonexistent/a\.gguf\) go with the llm generator"):
        ecr.Responder.load(tiny.bundle, generator="gpt2", lora=["/nonexistent/a.gguf:0.5"])
    with pytest.raises(ecr.ConfigError, match=r"\(/nonexistent/b\.gguf\) go with the llm generator"):
        ecr.Responder.load(tiny.bundle, generator="gpt2", lora=[("/nonexistent/b.gguf", 2.0)])
    with pytest.raises(ecr.IoError, match="missing.gguf"):
        ecr.Responder.load(tiny.bundle, generator="llm", llm="/nonexistent/missing.gguf", lora=["x.gguf"])
