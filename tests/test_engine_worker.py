"""The LMDeploy worker processes, for real, on any machine: how they start, end, wait idle and are
judged fit for another engine. (Loading an engine in one needs a GPU: tests/test_lmdeploy_gpu.py.)"""

import time

import pytest

from backends import EngineOptions, ModelLoadError, usable_gpu_reason
from backends.lmdeploy_process import REUSE_SLACK_MIB, EngineWorker, WorkerPool

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


@pytest.mark.skipif(usable_gpu_reason() is None, reason="the load succeeds where a GPU is usable")
def test_a_worker_given_gpus_sees_only_those_before_it_makes_its_cuda_context(embedded_folder, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # what the worker inherits
    worker = EngineWorker()
    stages = []
    with pytest.raises(ModelLoadError):
        worker.load(str(embedded_folder), EngineOptions(engine="pytorch"), stages.append, gpus=(1,))
    assert stages == ["importing LMDeploy and torch", "on GPU 1 (CUDA_VISIBLE_DEVICES=1)", "making the CUDA context"]
    worker.kill()


def test_an_idle_worker_is_handed_only_to_a_load_on_the_gpus_its_cuda_context_is_on():
    pool = WorkerPool()
    worker = EngineWorker()
    worker.gpus = (1,)  # as a load on GPU 1 leaves it (a load needs a GPU: tests/test_side_by_side_gpu.py)
    pool.keep_idle(worker)
    assert pool.take_idle() is None  # a load on the first GPU
    assert pool.take_idle((1,)) is worker
    worker.end()


def test_an_idle_worker_is_taken_once_and_told_to_exit_when_its_wait_is_over():
    pool = WorkerPool(wait_s=0.5)
    worker = EngineWorker()
    pool.keep_idle(worker)
    assert pool.take_idle() is worker and pool.take_idle() is None
    pool.keep_idle(worker)
    wait_until_ended(worker)
    assert worker.process.exitcode == 0 and pool.take_idle() is None  # told to exit, not killed


def test_keeping_a_second_idle_worker_ends_the_first():
    pool = WorkerPool()
    first, second = EngineWorker(), EngineWorker()
    pool.keep_idle(first)
    pool.keep_idle(second)
    assert not first.process.is_alive() and first.process.exitcode == 0
    assert pool.take_idle() is second
    second.end()
    assert second.process.exitcode == 0


def test_a_spare_worker_is_started_ahead_and_handed_out_once():
    pool = WorkerPool()
    pool.prepare_spare()
    pool.prepare_spare()  # one spare at a time
    spare, was_spare = pool.fresh()
    assert was_spare and spare.process.is_alive()
    pool.enabled = False  # ends the spare that handing this one out started
    another, was_spare = pool.fresh()
    assert not was_spare and another is not spare
    for worker in (spare, another):
        worker.end()
        assert worker.process.exitcode == 0


def test_handing_out_a_worker_starts_the_next_spare_at_once():
    pool = WorkerPool()
    first, was_spare = pool.fresh()
    assert not was_spare  # none was ready
    second, was_spare = pool.fresh()  # a load right after the first: the spare started with it
    assert was_spare and second is not first and second.process.is_alive()
    pool.enabled = False
    third, _ = pool.fresh()
    for worker in (first, second, third):
        worker.end()
        assert worker.process.exitcode == 0


def test_a_worker_hosts_another_engine_only_while_its_closes_leave_nothing_more_behind():
    worker = EngineWorker()
    assert worker.may_host_another(30_000, reusable=True)  # the first close sets the baseline
    assert worker.may_host_another(30_000 + REUSE_SLACK_MIB, reusable=True)
    assert not worker.may_host_another(30_000 + REUSE_SLACK_MIB + 1, reusable=True)
    assert not worker.may_host_another(30_000, reusable=False)  # it ran get_logits (garbling)
    assert not worker.may_host_another(None, reusable=True)  # memory unknown: no promise it is clean
    worker.end()
    assert not worker.may_host_another(30_000, reusable=True)


def test_with_reuse_turned_off_no_worker_is_kept_or_started_ahead():
    pool = WorkerPool()
    pool.prepare_spare()
    pool.enabled = False
    worker = EngineWorker()
    pool.keep_idle(worker)
    assert worker.process.exitcode == 0 and pool.take_idle() is None
    pool.prepare_spare()
    fresh, was_spare = pool.fresh()  # the spare started before is ended, not handed out
    assert not was_spare
    fresh.end()
