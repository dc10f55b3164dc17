"""Failed log-ins slow down per user and per address; a success clears the count."""

from console.log_ins import FREE_TRIES, LONGEST_WAIT_S, FailedLogIns
from tests.conftest import Clock


def test_waits_grow_past_the_free_tries_per_user_and_per_address():
    clock = Clock(100.0)
    throttle = FailedLogIns(clock)
    bob_here = ["user:bob", "addr:10.0.0.1"]
    for _ in range(FREE_TRIES):
        assert throttle.wait_s(bob_here) == 0
        throttle.record(bob_here, succeeded=False)
    assert throttle.wait_s(bob_here) == 1.0
    assert throttle.wait_s(["user:bob", "addr:10.0.0.2"]) == 1.0  # the same user from elsewhere
    assert throttle.wait_s(["user:ann", "addr:10.0.0.1"]) == 1.0  # another user from the same address
    assert throttle.wait_s(["user:ann", "addr:10.0.0.2"]) == 0
    throttle.record(bob_here, succeeded=False)
    assert throttle.wait_s(bob_here) == 2.0
    clock.now += 2.0
    assert throttle.wait_s(bob_here) == 0
    for _ in range(20):
        throttle.record(bob_here, succeeded=False)
    assert throttle.wait_s(bob_here) == LONGEST_WAIT_S
    throttle.record(bob_here, succeeded=True)
    assert throttle.wait_s(bob_here) == 0
