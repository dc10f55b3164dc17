"""The LMDeploy worker processes, for real, on any machine: how they start, end, wait idle and are
judged fit for another engine. (Loading an engine in one needs a GPU: tests/test_lmdeploy_gpu.py.)"""

import time

import pytest

from backends import EngineOptions, ModelLoadError, usable_gpu_reason
from backends.lmdeploy_process import REUSE_SLACK_MIB, EngineWorker, IdleWorker

pytestmark = pytest.mark.cpu


def wait_until_ended(worker: EngineWorker, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while worker.process.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.skipif(usable_gpu_reason() is None, reason="the load succeeds where a GPU is usable")
def test_a_failed_load_says_why_and_its_worker_ends(embedded_folder):
    worker = EngineWorker()
    stages = []
    with pytest.raises(ModelLoadError, match="No usable CUDA GPU: run with --backend cpu"):
        worker.load(str(embedded_folder), EngineOptions(engine="pytorch"), stages.append)
    assert stages == ["importing LMDeploy and torch", "making the CUDA context"]
    wait_until_ended(worker)
    assert worker.process.exitcode == 0  # it ended itself: a failed load may leave CUDA in any state
    worker.kill()


def test_an_idle_worker_is_taken_once_and_told_to_exit_when_its_wait_is_over():
    idle = IdleWorker(wait_s=0.5)
    worker = EngineWorker()
    idle.keep(worker)
    assert idle.take() is worker and idle.take() is None
    idle.keep(worker)
    wait_until_ended(worker)
    assert worker.process.exitcode == 0 and idle.take() is None  # told to exit, not killed


def test_keeping_a_second_worker_ends_the_first():
    idle = IdleWorker()
    first, second = EngineWorker(), EngineWorker()
    idle.keep(first)
    idle.keep(second)
    assert not first.process.is_alive() and first.process.exitcode == 0
    assert idle.take() is second
    second.end()
    assert second.process.exitcode == 0


def test_a_worker_hosts_another_engine_only_while_its_closes_leave_nothing_more_behind():
    worker = EngineWorker()
    assert worker.may_host_another(30_000, reusable=True)  # the first close sets the baseline
    assert worker.may_host_another(30_000 + REUSE_SLACK_MIB, reusable=True)
    assert not worker.may_host_another(30_000 + REUSE_SLACK_MIB + 1, reusable=True)
    assert not worker.may_host_another(30_000, reusable=False)  # it ran get_logits (issue 18's garbling)
    assert not worker.may_host_another(None, reusable=True)  # memory unknown: no promise it is clean
    worker.end()
    assert not worker.may_host_another(30_000, reusable=True)


def test_with_reuse_turned_off_a_kept_worker_ends_at_once():
    idle = IdleWorker(enabled=False)
    worker = EngineWorker()
    idle.keep(worker)
    assert worker.process.exitcode == 0 and idle.take() is None
