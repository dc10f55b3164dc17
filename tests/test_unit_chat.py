import asyncio
from contextlib import AsyncExitStack

from backends import BackendError, GenerationParams, PromptTooLong
from console.chat import ChatSession, RepaintPacer, ReplyStats, Turn, stream_reply
from tests.scripted import ScriptedBackend
from ui.render import chatbot_messages


def session_with(question: str = "hi", **kwargs) -> ChatSession:
    session = ChatSession(**kwargs)
    session.turns.append(Turn("user", question))
    return session


async def collect(backend, session, repaint_s=0.04) -> int:
    paints = 0
    async for _ in stream_reply(backend, session, RepaintPacer(min_interval_s=repaint_s)):
        paints += 1
    return paints


async def test_reply_is_assembled_and_repaints_are_coalesced():
    chunks = [f"w{i} " for i in range(500)]
    session = session_with()
    paints = await collect(ScriptedBackend(chunks), session, repaint_s=10)
    reply = session.turns[-1]
    assert reply.role == "assistant" and reply.content == "".join(chunks)
    assert paints == 3  # inside one repaint period: the question at once, the first text at once, then the end


async def test_stats_come_from_the_stream():
    session = session_with()
    await collect(ScriptedBackend(["a", "b", "c"], delay_s=0.01), session)
    stats = session.turns[-1].stats
    assert stats.finish == "stop" and stats.tokens == 3
    assert stats.ttft_ms is not None and stats.ttft_ms > 0
    assert stats.tokens_per_s is not None and stats.tokens_per_s > 0
    assert "TTFT" in stats.summary() and "tok/s" in stats.summary()


async def test_request_carries_history_system_prompt_and_params():
    params = GenerationParams(temperature=0, max_new_tokens=7, stop=("x",))
    session = ChatSession(system_prompt="be brief", params=params)
    session.turns += [Turn("user", "one"), Turn("assistant", "uno"), Turn("user", "two")]
    backend = ScriptedBackend(["dos"])
    await collect(backend, session)
    request = backend.requests[0]
    assert request.params == params
    assert [m["role"] for m in request.messages] == ["system", "user", "assistant", "user"]
    assert request.messages[0]["content"] == "be brief"


async def test_a_message_the_engine_refuses_as_too_long_goes_back_out_of_the_history():
    session = ChatSession()
    session.turns += [Turn("user", "earlier"), Turn("assistant", "answer"), Turn("user", "a very long one")]
    await collect(ScriptedBackend([], fail_with=PromptTooLong("over the 2048-token session")), session)
    assert session.turns[-1].stats.refused
    assert session.withdraw_refused() == "a very long one"
    assert [t.content for t in session.turns] == ["earlier", "answer"]  # the next message can be sent
    assert session.withdraw_refused() is None  # only a refusal is withdrawn


async def test_a_reply_cut_by_another_error_stays_in_the_chat():
    session = session_with()
    await collect(ScriptedBackend(["partial "], fail_with=PromptTooLong("ran out of session")), session)
    assert not session.turns[-1].stats.refused and session.withdraw_refused() is None


async def test_backend_error_keeps_the_partial_reply_and_the_chat():
    session = ChatSession()
    session.turns += [Turn("user", "earlier"), Turn("assistant", "answer"), Turn("user", "now")]
    await collect(ScriptedBackend(["partial "], fail_with=BackendError("engine fell over; restart it")), session)
    reply = session.turns[-1]
    assert reply.content == "partial "
    assert reply.stats.finish == "error" and "restart it" in reply.stats.error
    assert [t.content for t in session.turns[:3]] == ["earlier", "answer", "now"]


async def test_closing_the_stream_marks_the_reply_stopped_and_cancels_the_backend():
    session = session_with()
    backend = ScriptedBackend([f"{i} " for i in range(100)], delay_s=0.01)
    stream = stream_reply(backend, session, RepaintPacer(min_interval_s=0))
    await anext(stream)
    await anext(stream)
    await stream.aclose()
    assert session.turns[-1].stats.finish == "stopped"
    assert backend.closed_early
    assert session.turns[-1].content  # what arrived before Stop is kept


async def test_stop_ends_the_reply_from_inside_with_a_last_paint_that_says_stopped():
    session = session_with()
    backend = ScriptedBackend([f"{i} " for i in range(100)], delay_s=0.01)
    paints = []
    async for painted in stream_reply(backend, session, RepaintPacer(min_interval_s=0)):
        paints.append(painted.turns[-1].stats.finish)
        if len(paints) == 3:
            assert session.stop_reply()  # as the Stop button does, from an event of its own
    assert paints[-1] == "stopped" and "stopped" not in paints[:-1]
    assert backend.closed_early and session.turns[-1].content  # generation cancelled, text kept
    assert not session.stop_reply()  # nothing is streaming any more


async def test_stop_during_a_silent_prefill_ends_the_reply_at_once():
    session = session_with()
    stream = stream_reply(ScriptedBackend(["late"], delay_s=30), session)  # no first token for 30 s
    asyncio.get_running_loop().call_later(0.05, session.stop_reply)
    paints = [painted.turns[-1].stats.finish async for painted in stream]
    assert paints == ["generating", "stopped"] and session.turns[-1].content == ""


async def test_the_question_is_painted_before_the_engine_answers():
    """with a long prefill, the user's message used to appear only with the first token."""
    session = session_with()
    stream = stream_reply(ScriptedBackend(["late"], delay_s=30), session)  # no first token for 30 s
    first = await asyncio.wait_for(anext(stream), timeout=5)
    assert [t.role for t in first.turns] == ["user", "assistant"] and first.turns[-1].content == ""
    assert chatbot_messages(first)[-1]["content"] == "<sub>waiting for the first token…</sub>"
    session.stop_reply()
    assert [painted.turns[-1].stats.finish async for painted in stream] == ["stopped"]


def test_failed_empty_replies_are_not_sent_back_to_the_model():
    session = ChatSession()
    session.turns += [Turn("user", "q"), Turn("assistant", "", ReplyStats(finish="error", error="boom"))]
    assert session.model_messages() == [{"role": "user", "content": "q"}]


def test_rewind_returns_the_last_user_message_and_drops_what_follows():
    session = ChatSession()
    session.turns += [Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c"), Turn("assistant", "d")]
    assert session.rewind_to_last_user() == "c"
    assert [t.content for t in session.turns] == ["a", "b"]
    assert ChatSession().rewind_to_last_user() is None


async def test_concurrent_replies_share_the_repaint_budget():
    pacer = RepaintPacer(min_interval_s=0.04, budget_per_s=100)
    async with AsyncExitStack() as replies:
        await replies.enter_async_context(pacer.streaming())
        assert pacer.interval() == 0.04  # one reply: 25 repaints/s
        for _ in range(15):
            await replies.enter_async_context(pacer.streaming())
        assert pacer.interval() == 0.16  # sixteen: 6.25/s each, the 100/s budget in all
    assert pacer.active == 0


def test_the_stats_line_says_how_much_of_the_prompt_came_from_the_prefix_cache():
    assert (
        "· 960 prompt tokens from the prefix cache ·"
        in ReplyStats(ttft_ms=12.0, tokens=40, cached_tokens=960, finish="stop").summary()
    )
    assert (
        "prefix cache" not in ReplyStats(ttft_ms=12.0, tokens=40, cached_tokens=0, finish="stop").summary()
    )  # nothing reused: nothing said


async def test_a_reply_that_waits_says_why_and_is_repainted_when_that_changes():
    session = session_with()
    reasons = iter(["waiting: the engine is full: 37 requests wait in its queue"] * 2 + [None] * 100)

    async def why_waiting():
        return next(reasons)

    stream = stream_reply(ScriptedBackend(["late"], delay_s=30), session, why_waiting=why_waiting)
    await anext(stream)  # the question, at once
    told = await asyncio.wait_for(anext(stream), timeout=5)  # a second on, the reason
    assert (
        chatbot_messages(told)[-1]["content"] == "<sub>waiting: the engine is full: 37 requests wait in its queue</sub>"
    )
    session.stop_reply()
    assert [painted.turns[-1].stats.finish async for painted in stream] == ["stopped"]


async def test_the_first_text_paints_at_once_even_right_after_a_waiting_paint():
    session = session_with()
    reasons = iter(["waiting: the engine is full: 37 requests wait in its queue"] + [None] * 100)

    async def why_waiting():
        return next(reasons)

    backend = ScriptedBackend(["first", " rest"], delay_s=1.3)  # the first text 0.3 s after the reason's paint
    pacer = RepaintPacer(min_interval_s=10)  # as when hundreds stream: seconds between one reply's paints
    stream = stream_reply(backend, session, pacer, why_waiting=why_waiting)
    await anext(stream)  # the question
    await anext(stream)  # the reason, a second on
    painted = await asyncio.wait_for(anext(stream), timeout=1.0)
    assert painted.turns[-1].content == "first"
    session.stop_reply()
    [_ async for _ in stream]


async def test_the_console_says_a_full_engine_holds_the_reply_back():
    from backends import SchedulerMetrics
    from console.core import Console

    class FullEngine(ScriptedBackend):
        async def scheduler_metrics(self):
            return SchedulerMetrics(cache_usage=1.0, running=64, waiting=37)

    console = Console(FullEngine(["x"]), "test")
    assert await console.replies.why_waiting() == "waiting: the engine is full: 37 requests wait in its queue"
