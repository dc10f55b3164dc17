"""Blind votes between two presets' replies, kept on the server for every page to see.

One JSON line a vote in a file that survives restarts (`LMDEPLOY_CONSOLE_VOTES`, else the
console's cache folder). A pair is counted the same whichever side each preset was on: its two
names sorted, the winner by name.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from model_folders.cache import cache_dir

logger = logging.getLogger(__name__)

VOTES_ENV = "LMDEPLOY_CONSOLE_VOTES"
Z_95 = 1.959964  # the normal quantile of a two-sided 95% interval

Choice = Literal["left", "right", "tie"]


@dataclass(frozen=True)
class Vote:
    first: str  # the pair's names, sorted
    second: str
    winner: str  # a preset's name, or "tie"
    at: float  # seconds since the epoch


@dataclass(frozen=True)
class PairTally:
    first: str
    second: str
    first_wins: int
    second_wins: int
    ties: int

    @property
    def votes(self) -> int:
        return self.first_wins + self.second_wins + self.ties

    @property
    def first_win_rate(self) -> float:
        """The first preset's share of the votes, a tie counting half (as arenas count it)."""
        return (self.first_wins + self.ties / 2) / self.votes

    def interval(self) -> tuple[float, float]:
        """The 95% Wilson score interval of `first_win_rate`: unlike rate +- 1.96 standard errors, it
        stays inside [0, 1] and is honest at the handful of votes a room gives."""
        n, rate = self.votes, self.first_win_rate
        centre = (rate + Z_95**2 / (2 * n)) / (1 + Z_95**2 / n)
        spread = Z_95 * math.sqrt(rate * (1 - rate) / n + Z_95**2 / (4 * n * n)) / (1 + Z_95**2 / n)
        return max(0.0, centre - spread), min(1.0, centre + spread)


class VoteBook:
    """Every vote cast, appended to a file as it is cast (a kill loses at most the vote being written).
    Several processes may share the file (a room's): each reads the votes the others appended since it
    last looked, before every count."""

    def __init__(self, path: Path | None = None):
        self.path = path or Path(os.environ.get(VOTES_ENV) or cache_dir() / "votes.jsonl")
        self._lock = threading.Lock()
        self._votes: list[Vote] = []
        self._read_to = 0  # bytes of the file read, whole lines only
        self._lines_read = 0
        self._catch_up()

    def record(self, preset_a: str, preset_b: str, winner: str) -> Vote:
        """A vote between two presets: `winner` is one of them, or "tie"."""
        if winner not in (preset_a, preset_b, "tie"):
            raise ValueError(f"the winner must be {preset_a!r}, {preset_b!r} or 'tie', not {winner!r}")
        first, second = sorted((preset_a, preset_b))
        vote = Vote(first, second, winner, time.time())
        line = json.dumps(asdict(vote)) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b") as file:  # one write a line: appends do not interleave
                torn, end = False, file.seek(0, os.SEEK_END)
                if end:  # a last line cut short (a kill mid-write) must not swallow this one
                    file.seek(end - 1)
                    torn = file.read(1) != b"\n"
                file.write((("\n" if torn else "") + line).encode())
                file.flush()
                os.fsync(file.fileno())
        self._catch_up()
        return vote

    def tallies(self) -> list[PairTally]:
        """One tally a pair, the most voted first."""
        counts: dict[tuple[str, str], list[int]] = {}
        for vote in self._all():
            wins = counts.setdefault((vote.first, vote.second), [0, 0, 0])
            wins[0 if vote.winner == vote.first else 1 if vote.winner == vote.second else 2] += 1
        tallies = [PairTally(first, second, *wins) for (first, second), wins in counts.items()]
        return sorted(tallies, key=lambda tally: (-tally.votes, tally.first, tally.second))

    def as_json(self) -> str:
        return json.dumps([asdict(vote) for vote in self._all()], indent=1)

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["first", "second", "winner", "at"])
        writer.writerows([vote.first, vote.second, vote.winner, f"{vote.at:.3f}"] for vote in self._all())
        return out.getvalue()

    def _all(self) -> list[Vote]:
        self._catch_up()
        return list(self._votes)

    def _catch_up(self) -> None:
        """Read the votes appended since the last read (by this process or another); a line that is not a
        vote (a torn write, an edit) is skipped, said in the log; a line still being written waits."""
        with self._lock:
            try:
                if self.path.stat().st_size == self._read_to:
                    return
                with self.path.open("rb") as file:
                    file.seek(self._read_to)
                    appended = file.read()
            except FileNotFoundError:
                return
            except OSError as exc:
                logger.warning("votes file %s cannot be read (%s): its new votes are not counted", self.path, exc)
                return
            whole = appended[: appended.rfind(b"\n") + 1]
            self._read_to += len(whole)
            for line in whole.decode("utf-8", errors="replace").splitlines():
                self._lines_read += 1
                self._votes.extend(self._parsed(line))

    def _parsed(self, line: str) -> list[Vote]:
        try:
            fields = json.loads(line)
            return [Vote(str(fields["first"]), str(fields["second"]), str(fields["winner"]), float(fields["at"]))]
        except (ValueError, KeyError, TypeError):
            logger.warning("votes file %s, line %d is not a vote: skipped", self.path, self._lines_read)
            return []
