"""What one user may ask of a shared engine, as the command line sets it."""

import pytest

import app
from console.access import SHARED_LIMITS, ChatSlots, OverLimit, UsageLimits


@pytest.mark.parametrize(
    ("arguments", "auth", "expected"),
    [
        ([], None, UsageLimits()),
        (["--share", "--share-without-auth"], None, SHARED_LIMITS),
        ([], [("ann", "pw")], SHARED_LIMITS),
        (["--server-name", "0.0.0.0", "--max-new-tokens", "0", "--chats-at-once", "5"], None, UsageLimits(None, 8, 5)),
        (["--max-tool-rounds", "3"], None, UsageLimits(max_tool_rounds=3)),
    ],
)
def test_limits_are_the_shared_defaults_where_others_reach_the_console(arguments, auth, expected):
    assert app.usage_limits(app.parse_args(arguments), auth) == expected


def test_a_reply_or_tool_loop_beyond_the_limits_is_refused_with_the_flag_to_change():
    limits = UsageLimits(max_new_tokens=64, max_tool_rounds=4)
    limits.check_new_tokens(64)
    with pytest.raises(OverLimit, match=r"up to 64 new tokens \(--max-new-tokens\); 65 asked"):
        limits.check_new_tokens(65)
    with pytest.raises(OverLimit, match="up to 4 tool rounds"):
        limits.check_tool_rounds(5)
    with pytest.raises(OverLimit, match="max_rounds must be 1 or more"):
        UsageLimits().check_tool_rounds(-1)


def test_chats_at_once_are_counted_per_user_and_given_back():
    slots = ChatSlots(limit=1)
    with slots.take("bob"):
        with pytest.raises(OverLimit, match="1 chats streaming already"):
            slots.take("bob")
        with slots.take("ann"):
            pass
    with slots.take("bob"):  # given back when the first ended
        pass
