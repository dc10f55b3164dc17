"""The header tick's shared budget: a room of pages ticks slower, a lone page at its shortest interval."""

from tests.conftest import Clock
from ui.page_ticks import TickBudget


def test_a_lone_page_ticks_at_the_shortest_interval():
    budget = TickBudget(ticks_per_s=20, shortest_s=2.0, clock=Clock())
    assert budget.interval("page") == 2.0
    assert budget.interval("page") == 2.0  # its own ticks count once


def test_a_room_of_pages_shares_the_budget():
    budget = TickBudget(ticks_per_s=20, shortest_s=2.0, clock=Clock())
    for page in range(255):
        budget.interval(f"page-{page}")
    assert budget.interval("page-255") == 12.8  # 256 pages / 20 ticks a second


def test_closed_pages_stop_counting():
    clock = Clock()
    budget = TickBudget(ticks_per_s=20, shortest_s=2.0, clock=clock)
    for page in range(100):
        budget.interval(f"page-{page}")
    clock.now = 60.0  # none of them ticked for a minute: three of their 5 s intervals missed
    assert budget.interval("new page") == 2.0
