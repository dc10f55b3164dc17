"""Decode speed as every table counts it: the tokens after the first over the time after the first."""

import pytest

from telemetry.timing import decode_rate


def test_the_first_token_and_its_wait_are_left_out():
    # 11 tokens, the first at 2.0 s (prefill), the last at 4.0 s: 10 tokens decoded in 2 s
    assert decode_rate(11, first_at=2.0, ended_at=4.0) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("tokens", "first_at", "ended_at"),
    [(None, 1.0, 2.0), (0, 1.0, 2.0), (1, 1.0, 2.0), (5, None, 2.0), (5, 2.0, 2.0), (5, 3.0, 2.0)],
)
def test_nothing_to_divide_is_no_rate(tokens, first_at, ended_at):
    assert decode_rate(tokens, first_at, ended_at) is None
