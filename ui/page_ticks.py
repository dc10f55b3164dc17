"""How often each open page's header tick runs, so that a room of pages shares a fixed budget.

Every page ticks to refresh its header and knobs; at a fixed 2 s, 256 idle pages cost the console
about half a core, taken from the chats (a probe on the 2-core CI machine, before the tick's outputs
became plain values; its output was not kept). Each page is told its next
interval on every tick: max(2 s, open pages / budget), so the whole console spends about `budget`
ticks a second however many pages are open.
"""

from __future__ import annotations

import time

TICKS_PER_S = 20
SHORTEST_S = 2.0


class TickBudget:
    """The pages that ticked lately, and the interval each should tick at now."""

    def __init__(self, ticks_per_s: float = TICKS_PER_S, shortest_s: float = SHORTEST_S, clock=time.monotonic):
        self.ticks_per_s, self.shortest_s, self._clock = ticks_per_s, shortest_s, clock
        self._seen: dict[str, float] = {}  # page (Gradio session) -> when it last ticked

    def interval(self, page: str) -> float:
        """Record a tick of `page`; the seconds until its next one."""
        now = self._clock()
        self._seen[page] = now
        every = max(self.shortest_s, len(self._seen) / self.ticks_per_s)
        # a page that missed three of its ticks is closed (or asleep): it no longer counts
        self._seen = {p: at for p, at in self._seen.items() if now - at <= 3 * every}
        return max(self.shortest_s, len(self._seen) / self.ticks_per_s)
