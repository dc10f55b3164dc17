"""How every table of the console counts speed, so that the chat's stats, Compare and the benchmarks
that check them against the raw engine divide the same way."""

from __future__ import annotations


def decode_rate(tokens: int | None, first_at: float | None, ended_at: float) -> float | None:
    """Decode tokens/s: the tokens after the first over the time after the first (the first token's
    wait is the prefill, counted as TTFT); None where there is nothing to divide."""
    if first_at is None or not tokens or tokens < 2 or ended_at <= first_at:
        return None
    return (tokens - 1) / (ended_at - first_at)
