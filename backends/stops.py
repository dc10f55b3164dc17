"""Stop strings for engines that cannot stop on a string themselves."""

from __future__ import annotations


class StopMatcher:
    """Cuts a text stream at the first stop string, holding back what could start one.

    Streaming text through `feed` returns what is safe to show now; a stop string split over
    two chunks is still caught, and is never shown (OpenAI semantics).
    """

    def __init__(self, stops: tuple[str, ...]):
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if not self._stops:
            return text
        self._held += text
        cut = min((i for i in (self._held.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            safe, self._held = self._held[:cut], ""
            return safe
        keep = self._longest_stop_prefix_at_end()
        safe = self._held[: len(self._held) - keep]
        self._held = self._held[len(self._held) - keep :]
        return safe

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _longest_stop_prefix_at_end(self) -> int:
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(self._held)), best, -1):
                if self._held.endswith(stop[:n]):
                    best = n
                    break
        return best
