"""The Console's switching rules, in-process, with the real CPU backend."""

import asyncio

import pytest

from backends import BackendUnavailable, ChatRequest, GenerationParams
from console.core import Console
from console.engine_state import EngineBusy, NoEngine
from console.paths import ModelRoots
from presets.store import PresetCatalog, PresetError

pytestmark = pytest.mark.cpu


@pytest.fixture
def console(tmp_path, embedded_folder):
    (tmp_path / "outside.yaml").write_text("backend: cpu\nmodel: /etc\n")
    (tmp_path / "inside.yaml").write_text(f"backend: cpu\nmodel: {embedded_folder}\n")
    roots = ModelRoots([embedded_folder.parent])
    return Console(NoEngine("not started"), "test", catalog=PresetCatalog(user_dir=tmp_path), model_roots=roots)


async def test_model_outside_the_roots_is_refused_before_anything_loads(console):
    with pytest.raises(PresetError, match="outside.yaml: model: '/etc' is outside the allowed model roots"):
        await console.switch_preset("outside")
    assert console.state().info.kind == "none"


async def test_a_relative_model_loads_from_under_the_root_it_was_checked_in(
    console, tmp_path, embedded_folder, monkeypatch
):
    """A cpu preset's relative `model:` is checked under the first root; it must load from there too,
    not from the console's working directory (where another folder of that name may stand)."""
    (tmp_path / "relative.yaml").write_text(f"backend: cpu\nmodel: {embedded_folder.name}\n")
    elsewhere = tmp_path / "cwd"
    (elsewhere / embedded_folder.name).mkdir(parents=True)  # a folder of that name, not the model
    monkeypatch.chdir(elsewhere)
    await console.switch_preset("relative")  # from the empty folder here, the load would fail
    assert (console.state().preset, console.state().info.kind) == ("relative", "cpu")


async def test_switch_loads_the_preset_and_records_it(console):
    report = await console.switch_preset("inside")
    state = console.state()
    assert (state.preset, state.info.kind) == ("inside", "cpu")
    assert report.preset == "inside" and report.load_seconds > 0
    deltas = [
        d
        async for d in console.backend.stream_chat(
            ChatRequest(
                [{"role": "user", "content": "What is 2+3?"}], GenerationParams(temperature=0, max_new_tokens=30)
            )
        )
    ]
    assert any("5" in getattr(d, "text", "") for d in deltas)
    assert "from transformers import pipeline" in console.reproduce()
    await console.close()


async def test_no_engine_says_what_to_do():
    with pytest.raises(BackendUnavailable, match="Back to fp16"):
        [d async for d in NoEngine("loading 'kv-int4' failed; use 'Back to fp16'").stream_chat(None)]


async def test_restart_brings_the_same_engine_back(console):
    with pytest.raises(BackendUnavailable, match="no engine has run yet"):
        await console.restart()
    await console.switch_preset("inside")
    first = console.backend
    await console.restart()
    assert console.backend is not first and console.state().info.kind == "cpu"
    assert console.state().preset == "inside"
    labels = [e.label for e in console.sampler.events()]
    assert labels[-2:] == ["engine restart", "engine loaded: inside"]
    await console.close()


async def test_a_comparison_refuses_an_invalid_preset_before_measuring_any(tmp_path):
    from compare.load import LoadSettings
    from compare.prompts import builtin_prompts
    from compare.runner import CompareSettings, run_comparison
    from console.jobs import Job

    (tmp_path / "broken.yaml").write_text("backend: cpu\nquant_polcy: 8\n")
    (tmp_path / "short.yaml").write_text("backend: lmdeploy\nsession_len: 512\n")
    console = Console(NoEngine("none"), "test", catalog=PresetCatalog(user_dir=tmp_path))
    load = LoadSettings(requests=4, prompt_tokens=1024, output_tokens=8)
    settings = CompareSettings(("cpu", "broken", "short"), (builtin_prompts()["math"],), 8, 1, load=load)
    status = await console.jobs.start(Job("comparison", lambda job: run_comparison(console, settings, job))).wait()
    assert status.state == "failed"
    assert status.error.startswith("nothing was measured: ") and "quant_polcy" in status.error
    assert "short: LMDeploy needs a CUDA GPU" in status.error
    assert console.state().info.kind == "none" and not console.sampler.events()  # no engine was touched
    await console.close()


async def test_a_job_keeps_its_engine_and_cancel_during_a_load_test_frees_it(tmp_path):
    """While a comparison runs nobody else may switch or restart its engine; Cancel mid load test
    ends it and drops the requests it queued, so the next chat is answered instead of waiting."""
    import asyncio

    from compare.load import LoadSettings
    from compare.prompts import builtin_prompts
    from compare.runner import CompareSettings, run_comparison
    from console.jobs import Job

    (tmp_path / "cpu-b.yaml").write_text("backend: cpu\n")
    console = Console(NoEngine("none"), "test", catalog=PresetCatalog(user_dir=tmp_path))
    await console.switch_preset("cpu")
    load = LoadSettings(requests=200, prompt_tokens=64, output_tokens=64)
    settings = CompareSettings(("cpu", "cpu-b"), (builtin_prompts()["math"],), 4, 1, False, False, load=load)
    job = console.jobs.start(Job("comparison", lambda job: run_comparison(console, settings, job)))
    while "requests done" not in job.status().message:
        await asyncio.sleep(0.2)
    with pytest.raises(EngineBusy, match="cannot switch to 'cpu-b' now: a comparison job holds the engine"):
        await console.switch_preset("cpu-b")
    with pytest.raises(EngineBusy, match="cannot restart the engine now"):
        await console.restart()
    job.cancel()
    assert (await job.wait()).state == "cancelled"
    assert console.state().preset == "cpu"
    request = ChatRequest(
        [{"role": "user", "content": "What is 2+3?"}], GenerationParams(temperature=0, max_new_tokens=8)
    )
    replies = await asyncio.wait_for(_collect(console.backend.stream_chat(request)), timeout=60)
    assert any(getattr(delta, "text", "") for delta in replies)
    await console.close()


async def _collect(stream) -> list:
    return [delta async for delta in stream]


@pytest.mark.parametrize("fault", [RuntimeError("CUDA driver gone"), KeyError("model_type")])
async def test_an_unexpected_error_while_loading_ends_in_what_happened_and_the_way_back(monkeypatch, fault):
    """Not only BackendError: any failure leaves "loading failed (why); pick another preset", never
    "the engine is being switched" for good."""
    import console.core
    from backends import BackendSpec
    from console.engine_state import SwitchFailed

    async def broken(spec, on_stage):
        raise fault

    monkeypatch.setattr(console.core, "create_backend", broken)
    console = Console(NoEngine("none"), "test", spec=BackendSpec(kind="lmdeploy"))
    with pytest.raises(SwitchFailed, match=f"failed: unexpected {type(fault).__name__}"):
        await console.restart()
    reason = console.state().info.details["reason"]
    assert "restarting" not in reason and f"unexpected {type(fault).__name__}" in reason
    assert reason.endswith("pick another preset")


async def test_a_preset_that_fails_to_load_midway_is_a_failed_row_and_the_job_says_so(tmp_path):
    from compare.prompts import builtin_prompts
    from compare.runner import CompareSettings, run_comparison
    from console.jobs import Job
    from ui.job_view import status_markdown

    broken_model = tmp_path / "not-a-model"
    broken_model.mkdir()
    (broken_model / "config.json").write_text('{"model_type": "no-such-architecture"}')
    (tmp_path / "broken-model.yaml").write_text(f"backend: cpu\nmodel: {broken_model}\n")
    console = Console(NoEngine("none"), "test", catalog=PresetCatalog(user_dir=tmp_path))
    settings = CompareSettings(("cpu", "broken-model"), (builtin_prompts()["math"],), 4, 1, False, False)
    status = await console.jobs.start(Job("comparison", lambda job: run_comparison(console, settings, job))).wait()
    assert status.state == "done" and status.message == "1 of 2 presets failed (broken-model)"
    assert status_markdown(status).startswith("**Finished**") and "1 of 2 presets failed" in status_markdown(status)
    assert status.result.results[1].error.startswith("did not load")
    await console.close()


async def test_the_engine_state_can_be_read_all_through_a_switch(console):
    """Pages read the state every 2 s: while the old cpu engine closes (it hands its memory back in a
    thread), they must meet the new engine, not the closed one (an AttributeError before)."""
    import asyncio

    await console.switch_preset("inside")
    switching = asyncio.create_task(console.switch_preset("inside", fresh=True))
    while not switching.done():
        assert console.state().info.kind == "cpu"
        await asyncio.sleep(0)
    await switching
    await console.close()


def test_an_lmdeploy_preset_runs_on_the_engine_its_checks_picked(console):
    """The spec a switch starts carries the engine `auto` settled on (here the PyTorch engine, the
    one with fp8 KV), checked without a GPU by standing in this machine's facts."""
    from presets.compat import Machine
    from presets.schema import Preset

    console.checks.__dict__["machine"] = Machine(gpu_count=1, turbomind=True, compute_capability=(9, 0))
    spec, notes = console.checks.spec(Preset(quant_policy="fp8"), "kv-fp8.yaml")
    assert (spec.kind, spec.engine.engine, spec.engine.quant_policy) == ("lmdeploy", "pytorch", 16)
    assert "auto picks the PyTorch engine" in notes[0]


async def test_a_message_sent_during_a_switch_waits_for_it_and_says_so_then_runs(console):
    from console.chat import ChatSession, Turn

    switching = asyncio.create_task(console.switch_preset("inside"))
    while console.switching is None:
        await asyncio.sleep(0.01)
    session = ChatSession(params=GenerationParams(temperature=0, max_new_tokens=30))
    session.turns.append(Turn("user", "What is 2+3?"))
    waits = []
    async for painted in console.replies.stream(session):
        waits.append(painted.turns[-1].stats.waiting)
    await switching
    assert waits[0].startswith("waits for the engine, switching to inside: ")  # the stage and seconds follow
    assert [t.role for t in session.turns] == ["user", "assistant"]  # the waiting line gave way to the reply
    assert "5" in session.turns[-1].content and not session.turns[-1].stats.error


async def test_stop_ends_the_wait_for_a_switch(console):
    from console.chat import ChatSession, Turn

    switching = asyncio.create_task(console.switch_preset("inside"))
    while console.switching is None:
        await asyncio.sleep(0.01)
    session = ChatSession()
    session.turns.append(Turn("user", "hi"))
    paints = []
    async for painted in console.replies.stream(session):
        paints.append(painted.turns[-1].stats.finish)
        if len(paints) == 1:
            session.stop_reply()
    await switching
    assert paints[-1] == "stopped" and session.turns[-1].content == ""
    assert console.switching is None and console.state().preset == "inside"


async def test_a_switch_reports_where_its_time_went(console):
    report = await console.switch_preset("inside")
    stages = dict(report.stages)
    assert list(stages) == ["starting the new engine", "loading the model with transformers", "closing the old engine"]
    assert all(seconds > 0 for seconds in stages.values())
    assert sum(stages.values()) <= report.load_seconds  # parts of the switch, one after another


async def test_a_preset_that_differs_in_generation_settings_only_keeps_the_running_engine(console, tmp_path):
    (tmp_path / "inside-greedy.yaml").write_text(
        (tmp_path / "inside.yaml").read_text() + "generation:\n  temperature: 0\n"
    )
    await console.switch_preset("inside")
    engine = console.backend
    report = await console.switch_preset("inside-greedy")
    assert console.backend is engine and console.state().preset == "inside-greedy"
    assert console.state().default_params.temperature == 0
    assert [stage for stage, _ in report.stages] == ["the running engine kept: only the generation settings change"]
    assert "as loaded for inside" in console.state().reason
    await console.switch_preset("inside-greedy", fresh=True)  # fresh: loaded anew all the same
    assert console.backend is not engine
    await console.close()


async def test_side_b_keeps_its_load_stage_by_stage(tmp_path):
    """Side B's load is told stage by stage as a switch is (the page shows the stage while it loads): kept with
    the load, in order, the stages' seconds adding up to the load's."""
    from tests.conftest import start_paced_server, stop_process

    server, base_url = start_paced_server(tmp_path / "paced.log")
    try:
        (tmp_path / "served.yaml").write_text(f"backend: remote\nbase_url: {base_url}\n")
        console = await Console.start_preset("served", catalog=PresetCatalog(user_dir=tmp_path))
        try:
            loaded = await console.side_b.load("served")
        finally:
            await console.close()
    finally:
        stop_process(server)
    assert [stage for stage, _ in loaded.stages] == ["starting the engine", "connecting to the server"]
    assert sum(seconds for _, seconds in loaded.stages) == pytest.approx(loaded.load_seconds)
