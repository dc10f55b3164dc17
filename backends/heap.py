"""What a console process holds for as long as it serves, kept out of the garbage collector's way.

CPython's full collection walks every object that survived the collections before it. A console process
holds a few hundred thousand from its start (Gradio's app, torch, LMDeploy, an engine's objects), and the
first burst of chats after a start makes enough new ones to set off a full collection: every stream of
that process waits meanwhile. Measured with a room of 8 relaying bench/paced_server.py to 256 users on
the 2-core machine: in the first round each room process ran one full collection of 314-590 ms and the
room's engine host one of 364 ms (docs/cpu-runs/2026-12-05-gc-freeze). Frozen, those objects are left
alone: later collections walk only what was made since.
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
