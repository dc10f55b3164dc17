"""Side by side through the API: two CPU presets answer one message at once, the vote is blind and kept."""

import json

import pytest
from gradio_client import Client

from console.votes import VoteBook
from tests.conftest import start_console, stop_process

pytestmark = pytest.mark.app

LEFT, RIGHT, LEFT_STATS, RIGHT_STATS, PARTED, ROUND, LEFT_TITLE, RIGHT_TITLE = range(8)


@pytest.fixture(scope="module")
def console(embedded_folder, user_presets, tmp_path_factory):
    """Its own console, on the embedded model's `cpu` preset, with a votes file of its own."""
    from console.votes import VOTES_ENV
    from presets.store import USER_PRESETS_ENV

    folder = tmp_path_factory.mktemp("side-by-side")
    votes = folder / "votes.jsonl"
    # a round nobody reads is stopped after 4 s (10 s by default), for the test of it below
    env = {USER_PRESETS_ENV: str(user_presets), VOTES_ENV: str(votes), "LMDEPLOY_CONSOLE_UNREAD_S": "4"}
    process, url = start_console(["--preset", "cpu"], folder / "console.log", env=env)
    yield url, votes
    stop_process(process)


def send(client, message, blind=True, greedy=True, max_new_tokens=48, shaded=False):
    return client.predict(message, blind, greedy, max_new_tokens, shaded, api_name="/side_by_side")


def test_without_side_b_a_round_says_to_load_one(console):
    url, _ = console
    client = Client(url, verbose=False)
    client.predict(api_name="/unload_side_b")
    assert "load a preset as side B first" in send(client, "Hello")[PARTED]


def test_a_blind_round_names_the_sides_only_after_the_vote_and_the_vote_is_kept(console):
    url, votes = console
    client = Client(url, verbose=False)
    status, _ = client.predict("cpu-bf16", api_name="/load_side_b")
    assert "**B:** cpu-bf16 (transformers (CPU, bf16)" in status
    before = sum(tally.votes for tally in VoteBook(votes).tallies())
    round_ = send(client, "What is 2+3? Answer briefly.")[ROUND]
    assert round_["finished"] and round_["left"]["text"] and round_["right"]["text"]
    assert round_["left"]["preset"] is None and round_["right"]["preset"] is None  # blind

    revealed, tally, left_title, right_title = client.predict("left", api_name="/vote")
    names = {left_title.removeprefix("### Left: "), right_title.removeprefix("### Right: ")}
    assert names == {"cpu", "cpu-bf16"} and "your vote for" in revealed
    (kept,) = [t for t in VoteBook(votes).tallies() if {t.first, t.second} == names]
    assert sum(t.votes for t in VoteBook(votes).tallies()) == before + 1
    assert kept.first_wins + kept.second_wins == 1  # "left" won: one preset has the win, no tie
    listed = {(row["first"], row["second"]): row for row in client.predict(api_name="/side_by_side_votes")}
    assert listed[("cpu", "cpu-bf16")]["votes"] == kept.votes

    assert "this round has its vote" in client.predict("tie", api_name="/vote")[0]


def test_an_open_round_names_its_sides_and_is_not_voted_on(console):
    url, _ = console
    client = Client(url, verbose=False)
    client.predict("cpu-bf16", api_name="/load_side_b")
    painted = send(client, "Name a fruit.", blind=False)
    assert (painted[ROUND]["left"]["preset"], painted[ROUND]["right"]["preset"]) == ("cpu", "cpu-bf16")
    assert "only blind rounds are voted on" in client.predict("left", api_name="/vote")[0]


def test_greedy_replies_of_fp32_and_dynamic_int8_weights_part_and_the_place_is_marked(console):
    url, _ = console
    client = Client(url, verbose=False)
    client.predict("cpu-int8-dynamic", api_name="/load_side_b")
    painted = send(client, "Write two sentences about the sea.", blind=False, max_new_tokens=64)
    assert painted[ROUND]["parted_at"] is not None
    assert "the replies part at character" in painted[PARTED]
    assert "<mark>" in painted[LEFT] and "<mark>" in painted[RIGHT]


def test_a_preset_saved_after_the_console_started_loads_as_side_b(console, user_presets):
    url, _ = console
    late = user_presets / "bf16-saved-late.yaml"
    late.write_text("backend: cpu\ncpu_weights: bf16\n", encoding="utf-8")
    try:
        status, _ = Client(url, verbose=False).predict("bf16-saved-late", api_name="/load_side_b")
        assert "**B:** bf16-saved-late (transformers (CPU, bf16)" in status
    finally:
        late.unlink()


def test_a_round_whose_client_never_reads_its_stream_is_stopped(console):
    """A client that gave up waiting for its queue join never opens the session's event stream; both sides
    must leave their engines as Stop would, instead of writing their 1,024 tokens each (minutes here)."""
    from bench.gradio_stream import GradioEndpoint
    from tests.conftest import completion_read_late

    url, _ = console
    status, _ = Client(url, verbose=False).predict("cpu-bf16", api_name="/load_side_b")
    assert "**B:** cpu-bf16" in status
    round_args = ("Count from 1 to 1000, one number a line.", False, True, 1024, False)
    # read 15 s late: the round ended as stopped
    completed = completion_read_late(GradioEndpoint(url, "side_by_side"), round_args, unread_s=15)
    round_ = completed["output"]["data"][ROUND]
    assert round_["finished"], json.dumps(round_)[-400:]
    assert round_["left"]["stats"].endswith("stopped") and round_["right"]["stats"].endswith("stopped"), round_


def test_a_room_voting_at_once_gets_each_vote_counted_for_its_own_round(console):
    """Eight visitors of one link each run a blind round and vote "left" at the same time: each is told the
    sides of its own round, the tally gains exactly the eight votes, each for the preset that visitor saw on
    the left, and any page reads the room's tally."""
    from concurrent.futures import ThreadPoolExecutor

    url, votes = console
    Client(url, verbose=False).predict("cpu-bf16", api_name="/load_side_b")
    pair = ("cpu", "cpu-bf16")

    def wins() -> tuple[int, int]:
        kept = [t for t in VoteBook(votes).tallies() if (t.first, t.second) == pair]
        return (kept[0].first_wins, kept[0].second_wins) if kept else (0, 0)

    def visitor(number: int) -> str:
        client = Client(url, verbose=False)
        round_ = send(client, f"Say the number {number}.", max_new_tokens=16)[ROUND]
        assert round_["finished"] and round_["left"]["preset"] is None, round_  # still blind
        revealed, _, left_title, right_title = client.predict("left", api_name="/vote")
        assert "your vote for" in revealed, revealed
        left, right = left_title.removeprefix("### Left: "), right_title.removeprefix("### Right: ")
        assert {left, right} == set(pair)
        return left

    before = wins()
    with ThreadPoolExecutor(8) as room:
        lefts = list(room.map(visitor, range(8)))
    after = wins()
    assert (after[0] - before[0], after[1] - before[1]) == (lefts.count("cpu"), lefts.count("cpu-bf16"))
    (listed,) = [row for row in Client(url, verbose=False).predict(api_name="/side_by_side_votes")
                 if (row["first"], row["second"]) == pair]  # fmt: skip
    assert (listed["first_wins"], listed["second_wins"]) == after
