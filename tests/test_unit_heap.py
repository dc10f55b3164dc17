"""What a process sets aside stays out of ordinary collections, and a closed engine's objects still come
back: `collect_everything` reaches what was set aside."""

import gc
import weakref

from backends.heap import collect_everything, set_aside


class Held:
    """An object in a reference cycle, as an engine's parts often are: only a collection frees it."""

    def __init__(self):
        self.me = self


def test_an_ordinary_collection_leaves_what_was_set_aside_alone():
    held = Held()
    watched = weakref.ref(held)
    set_aside()
    try:
        del held
        gc.collect()
        assert watched() is not None
    finally:
        collect_everything()


def test_collect_everything_frees_a_cycle_that_was_set_aside():
    held = Held()
    watched = weakref.ref(held)
    set_aside()
    del held
    collect_everything()
    assert watched() is None
    assert gc.get_freeze_count() == 0
