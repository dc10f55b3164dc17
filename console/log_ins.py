"""Failed log-ins slow down, per user and per address: counted wherever log-ins are checked (each
console process, and a room's router in front of several), so that spreading guesses over a room's
processes buys no more of them."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

FREE_TRIES = 5  # wrong passwords before log-ins slow down, per user and per address
LONGEST_WAIT_S = 60.0
SLOWDOWN_NOTICE = (
    f"After {FREE_TRIES} wrong passwords for a user, or from one address, each further try must wait "
    f"longer: 1 s, then 2, 4, ... up to {LONGEST_WAIT_S:.0f} s."
)


def log_in_keys(form: bytes, address: str) -> list[str]:
    """What a log-in's tries are counted by: the user its form names, and the address it came from."""
    user = parse_qs(form.decode("utf-8", "replace")).get("username", [""])[0]
    return [f"user:{user}", f"addr:{address}"]


def too_many(wait_s: float) -> str:
    """The JSON body of the 429 that answers a try before its wait has passed (the log-in page shows
    its detail)."""
    return json.dumps({"detail": f"too many failed log-ins: try again in {wait_s:.0f} s"})


class FailedLogIns:
    """Past FREE_TRIES failures of a key (a user, an address), its next try waits 1 s, then 2, 4, ...
    up to LONGEST_WAIT_S after the last failure; a success clears its keys."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, last failure)

    def wait_s(self, keys: list[str]) -> float:
        """Seconds before the next try is heard, for the most failed of these keys."""
        waits = []
        for key in keys:
            count, last = self._failures.get(key, (0, 0.0))
            if count >= FREE_TRIES:
                waits.append(min(2.0 ** (count - FREE_TRIES), LONGEST_WAIT_S) - (self._clock() - last))
        return max([0.0, *waits])

    def record(self, keys: list[str], succeeded: bool) -> None:
        for key in keys:
            if succeeded:
                self._failures.pop(key, None)
            else:
                self._failures[key] = (self._failures.get(key, (0, 0.0))[0] + 1, self._clock())
