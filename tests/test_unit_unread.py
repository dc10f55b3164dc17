"""A streaming event's paints: read as they come, or piling up with nobody reading."""

from tests.conftest import Clock
from ui.unread import UnreadPaints


def test_paints_read_as_they_come_never_count_as_unread():
    clock = Clock()
    unread = UnreadPaints(lambda: 1, unread_for_s=10, clock=clock)  # the newest paint, not yet taken
    for _ in range(100):
        clock.now += 1
        assert not unread.nobody_reads()


def test_paints_unread_for_the_whole_time_mean_nobody_reads():
    clock, waiting = Clock(), [2]
    unread = UnreadPaints(lambda: waiting[0], unread_for_s=10, clock=clock)
    assert not unread.nobody_reads()
    clock.now = 9.9
    waiting[0] = 30
    assert not unread.nobody_reads()
    clock.now = 10.0
    assert unread.nobody_reads()


def test_a_reader_that_catches_up_starts_the_count_again():
    clock, waiting = Clock(), [5]
    unread = UnreadPaints(lambda: waiting[0], unread_for_s=10, clock=clock)
    unread.nobody_reads()
    clock.now, waiting[0] = 8, 0  # a slow page took them all
    assert not unread.nobody_reads()
    clock.now, waiting[0] = 12, 5
    assert not unread.nobody_reads()
    clock.now = 21.9
    assert not unread.nobody_reads()
    clock.now = 22
    assert unread.nobody_reads()
