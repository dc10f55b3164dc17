"""Blind votes: counted per pair whichever side each preset was on, kept on file, with a Wilson interval."""

import json

import pytest

from console.votes import PairTally, VoteBook


def test_a_pair_is_counted_the_same_whichever_side_each_preset_was_on(tmp_path):
    book = VoteBook(tmp_path / "votes.jsonl")
    book.record("kv-int4", "fp16", "fp16")
    book.record("fp16", "kv-int4", "fp16")
    book.record("fp16", "kv-int4", "tie")
    book.record("cpu", "cpu-bf16", "cpu")
    (first, second) = book.tallies()
    assert (first.first, first.second, first.first_wins, first.second_wins, first.ties) == ("fp16", "kv-int4", 2, 0, 1)
    assert first.first_win_rate == pytest.approx(2.5 / 3)  # a tie counts half
    assert (second.first, second.votes) == ("cpu", 1)


def test_votes_survive_a_restart_and_a_torn_line_is_skipped(tmp_path):
    path = tmp_path / "votes.jsonl"
    VoteBook(path).record("a", "b", "b")
    with path.open("a", encoding="utf-8") as file:
        file.write('{"first": "a", "second"')  # a kill in the middle of a write
    book = VoteBook(path)
    (tally,) = book.tallies()
    assert (tally.first_wins, tally.second_wins, tally.ties) == (0, 1, 0)
    book.record("a", "b", "a")  # the next vote starts on a line of its own
    (tally,) = VoteBook(path).tallies()
    assert (tally.first_wins, tally.second_wins, tally.ties) == (1, 1, 0)


def test_processes_sharing_the_file_count_each_others_votes(tmp_path):
    """A room's processes: each keeps a book of the one file, and counts every vote cast in any."""
    first, second = VoteBook(tmp_path / "votes.jsonl"), VoteBook(tmp_path / "votes.jsonl")
    first.record("a", "b", "a")
    second.record("a", "b", "tie")
    for book in (first, second):
        (tally,) = book.tallies()
        assert (tally.first_wins, tally.ties) == (1, 1)


def test_a_winner_that_is_neither_preset_nor_a_tie_is_refused(tmp_path):
    with pytest.raises(ValueError, match="the winner must be"):
        VoteBook(tmp_path / "votes.jsonl").record("a", "b", "c")


def test_the_interval_is_wilsons_and_stays_within_0_and_1():
    low, high = PairTally("a", "b", 8, 2, 0).interval()
    assert (low, high) == (pytest.approx(0.490, abs=1e-3), pytest.approx(0.943, abs=1e-3))
    assert PairTally("a", "b", 3, 0, 0).interval()[1] == 1.0
    assert PairTally("a", "b", 0, 3, 0).interval()[0] == 0.0


def test_exports_hold_every_vote(tmp_path):
    book = VoteBook(tmp_path / "votes.jsonl")
    book.record("a", "b", "a")
    book.record("a", "b", "tie")
    assert book.as_csv().splitlines()[0] == "first,second,winner,at" and len(book.as_csv().splitlines()) == 3
    assert [vote["winner"] for vote in json.loads(book.as_json())] == ["a", "tie"]
