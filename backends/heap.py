"""What a console process holds for as long as it serves, kept out of the garbage collector's way.

CPython's full collection walks every object that survived the collections before it. A console process
holds a few hundred thousand from its start (Gradio's app, torch, LMDeploy, an engine's objects), and the
first bursts of chats after a start make enough new ones to set off full collections: every stream of
that process waits meanwhile. Measured with a room of 8 relaying bench/paced_server.py to 256 users on
the 2-core machine: in the first two rounds the room processes ran 6-7 full collections of up to 694 ms
and the room's engine host one a round of 228-567 ms; frozen, none in the room processes and 27-193 ms in
the host (docs/cpu-runs/2026-12-05-gc-freeze). Later collections walk only what was made since.
"""

from __future__ import annotations

import gc


def set_aside() -> None:
    """Collect, then freeze what is left: call where a process has built what it keeps (it begins to
    serve, an engine has loaded)."""
    gc.collect()
    gc.freeze()


def collect_everything() -> None:
    """A collection that reaches what was set aside too: where a closed engine's memory must come back
    (its objects may sit in reference cycles)."""
    gc.unfreeze()
    gc.collect()
