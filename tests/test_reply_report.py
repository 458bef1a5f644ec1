"""tools/reply_report.py's checks on hand-made replies: each check passes a good reply and fails
the reply made to break it, so a check that always passes (or always fails) is caught."""

import json

import pytest

from tools import reply_report as rr

DICTIONARY = {w.lower() for w in """i think you would like it is a warm funny film about love and loss that will
make smile again on sad day the story of two people who meet in london its cast gives heart to every scene
with so much charm hope enjoy""".split()}

GOOD = {
    "conversation": "1",
    "dialog": [{"role": "user", "text": "I loved Pretty Woman (1990), and I feel sad today."}],
    "user_emotions": [{"label": "negative", "prob": 0.8}],
    "recommended": "Notting Hill (1999)",
    "named_before": ["Pretty Woman (1990)"],
    "knowledge": ["Notting Hill (1999)'s starring is Julia Roberts", "Notting Hill (1999)'s director is Roger Michell"],
    "review_entities": ["London"],
    "prompt_text": "<|im_start|>assistant\nI think you would like Notting Hill (1999).",
    "reply": "I think you would like Notting Hill (1999). It is a warm, funny film about love, and Julia Roberts "
             "gives heart to every scene; I hope it will make you smile again on a sad day.",
}


def with_reply(text, **changes):
    return {**GOOD, "reply": text, **changes}


def checks(record):
    return rr.score(record, DICTIONARY)


def test_a_good_reply_passes_every_check():
    c = checks(GOOD)
    for key in ["title", "length", "english", "sentence", "no_repeat", "fact", "fact_generated", "new_movie",
                "no_earlier_movie"]:
        assert c[key], key
    assert c["facts_cited"] == ["Julia Roberts"]


def test_title_year_optional_but_title_needed():
    assert checks(with_reply(GOOD["reply"].replace(" (1999)", "")))["title"]
    assert not checks(with_reply("I think you would like it. It is a warm, funny film about love and loss."))["title"]
    # A part of the title is not the title.
    assert not rr.title_appears("Notting is a warm word.", "Notting Hill (1999)")


def test_length_bounds():
    assert not checks(with_reply("I think you would like Notting Hill."))["length"]
    assert not checks(with_reply("I think you would like Notting Hill. " + "So much charm. " * 60))["length"]
    assert rr.length_ok(" ".join(["word"] * 12)) and not rr.length_ok(" ".join(["word"] * 11))
    assert rr.length_ok(" ".join(["word"] * 120)) and not rr.length_ok(" ".join(["word"] * 121))


def test_english_share_counts_only_this_reply_names():
    garbled = with_reply("I have you ever seen SHave you ever watched Slee Ryan Notting Hill xqz blorf zzt wug?")
    assert not checks(garbled)["english"]
    # A name of another movie's cast is no English word here.
    stranger = with_reply("I think you would like Notting Hill, with Keanu Reeves Carrie Moss Laurence Fishburne Hugo "
                          "Weaving.")
    assert rr.english_fraction(stranger["reply"], DICTIONARY, ["Notting Hill"]) < rr.ENGLISH_SHARE
    assert rr.english_fraction("Julia Roberts's film", DICTIONARY, ["Julia Roberts"]) == 1.0


def test_ends_a_sentence():
    assert not checks(with_reply(GOOD["reply"].rstrip(".") + " and"))["sentence"]
    assert rr.ends_sentence('He said "I love it!"') and rr.ends_sentence("Really?") and not rr.ends_sentence("So,")


def test_repeated_4gram():
    looped = with_reply("I think you would like Notting Hill. I think you would like it a lot, it is a film.")
    c = checks(looped)
    assert not c["no_repeat"] and c["repeated_4gram"] == "i think you would"


def test_fact_cited_and_generated_part():
    no_fact = with_reply("I think you would like Notting Hill (1999). It is a warm, funny film about love and loss that "
                         "will make you smile.")
    assert not checks(no_fact)["fact"]
    # A fact only in the engine's opening counts as cited, not as the model's own.
    opening = "I think you would like Notting Hill (1999), starring Julia Roberts."
    in_opening = with_reply(opening + " It is a warm, funny film about love that will make you smile again.",
                            prompt_text="<|im_start|>assistant\n" + opening)
    c = checks(in_opening)
    assert c["fact"] and not c["fact_generated"]
    # Another movie's facts do not count.
    other = with_reply(GOOD["reply"], knowledge=["Pretty Woman (1990)'s starring is Julia Roberts"], review_entities=[])
    assert not checks(other)["fact"]


def test_new_movie():
    assert not checks(with_reply(GOOD["reply"], named_before=["Notting Hill  (1999)"]))["new_movie"]
    assert not checks(with_reply(GOOD["reply"], named_before=["Notting Hill"]))["new_movie"]


def test_earlier_movie_named_in_the_text():
    again = with_reply(GOOD["reply"] + " You might also like Pretty Woman again.")
    c = checks(again)
    assert c["new_movie"] and not c["no_earlier_movie"] and c["earlier_movie_named"] == "Pretty Woman (1990)"
    assert checks(GOOD)["no_earlier_movie"]
    # A one-word title counts only with its year.
    assert rr.names_earlier_movie("It is a warm film.", ["It (2017)"]) is None
    assert rr.names_earlier_movie("Watch It (2017) again.", ["It (2017)"]) == "It (2017)"


def test_dist2():
    assert rr.dist2(["a b c d", "e f g h"]) == 1.0
    assert rr.dist2(["a b a b a b"]) == pytest.approx(2 / 5)
    assert rr.dist2([]) == 0.0


def test_summary_targets_can_fail():
    bad = with_reply("I like Notting Hill. I like Notting Hill.")
    records = [dict(r, checks=checks(r)) for r in [GOOD, bad]]
    s = rr.summarize(records)
    assert s["title"] == 1.0 and s["length"] == 0.5 and not s["passes"]["length"] and s["passes"]["title"]
    assert not s["passes"]["no_repeat"]


def test_cut_dialog_before_a_recommending_turn():
    record = {"initiatorWorkerId": 1, "messages": [
        {"senderWorkerId": 2, "text": "Hi, what do you like?"},
        {"senderWorkerId": 1, "text": "I loved @10"},
        {"senderWorkerId": 1, "text": "and comedies"},
        {"senderWorkerId": 2, "text": "What about comedies?"},
        {"senderWorkerId": 1, "text": "yes"},
        {"senderWorkerId": 2, "text": "Try @20"},
        {"senderWorkerId": 1, "text": "thanks"}]}
    turns, named = rr.cut_dialog(record)
    assert [t["role"] for t in turns] == ["system", "user", "system", "user"]
    assert turns[1]["text"] == "I loved @10 and comedies" and named == ["10"]
    assert rr.cut_dialog({"initiatorWorkerId": 1, "messages": [{"senderWorkerId": 2, "text": "Try @20"}]}) is None


def test_rescore_round_trip(tmp_path):
    saved = tmp_path / "report.json"
    saved.write_text(json.dumps({"label": "llm", "command": "x", "replies": [dict(GOOD)]}))
    if not rr.DICTIONARY.exists():
        pytest.skip("needs /usr/share/dict/words (wamerican, tools/install_deps.sh)")
    out = tmp_path / "report.md"
    assert rr.main(["--rescore", str(saved), "--markdown", str(out)]) == 0
    assert "Notting Hill" in out.read_text()
