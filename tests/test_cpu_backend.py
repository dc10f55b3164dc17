"""The real SmolLM2-135M-Instruct on the CPU backend."""

import asyncio
import json

import pytest

from backends import (
    ChatRequest,
    Finish,
    GenerationParams,
    PromptTooLong,
    Queued,
    TextDelta,
    TokenLogprobs,
    ToolCall,
    ToolCallPiece,
    Usage,
)

pytestmark = pytest.mark.cpu

GREEDY = GenerationParams(temperature=0, max_new_tokens=48)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def deltas_of(backend, request) -> list:
    return [delta async for delta in backend.stream_chat(request)]


async def test_answers_a_sum_in_several_streamed_deltas(cpu_backend):
    deltas = await deltas_of(cpu_backend, ChatRequest(ask("What is 2+3?"), GREEDY))
    texts = [d.text for d in deltas if isinstance(d, TextDelta)]
    assert "5" in "".join(texts)
    assert len(texts) >= 3
    usage = next(d for d in deltas if isinstance(d, Usage))
    assert usage.prompt_tokens > 5 and usage.completion_tokens >= len(texts)
    assert deltas[-1] == Finish("stop")


async def test_max_new_tokens_ends_with_length(cpu_backend):
    deltas = await deltas_of(
        cpu_backend,
        ChatRequest(ask("Write a long story about a cat."), GenerationParams(temperature=0, max_new_tokens=5)),
    )
    assert next(d for d in deltas if isinstance(d, Usage)).completion_tokens == 5
    assert deltas[-1] == Finish("length")


async def test_stop_word_ends_the_reply_before_it(cpu_backend):
    params = GenerationParams(temperature=0, max_new_tokens=48, stop=("5",))
    deltas = await deltas_of(cpu_backend, ChatRequest(ask("What is 2+3?"), params))
    text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
    assert "5" not in text and text.strip()
    assert deltas[-1] == Finish("stop")


async def test_a_temperature_too_small_to_divide_by_decodes_greedily(cpu_backend):
    """Found by fuzzing /chat: 1e-212 overflowed the logits and escaped as a bare exception."""
    tiny = GenerationParams(temperature=8.6e-212, max_new_tokens=30)
    deltas = await deltas_of(cpu_backend, ChatRequest(ask("What is 2+3?"), tiny))
    assert deltas[-1] == Finish("stop") and "5" in "".join(d.text for d in deltas if isinstance(d, TextDelta))


async def test_token_probabilities_come_with_the_reply(cpu_backend):
    params = GenerationParams(temperature=0, max_new_tokens=12, logprobs=3)
    deltas = await deltas_of(cpu_backend, ChatRequest(ask("What is the capital of France?"), params))
    text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
    [probabilities] = [d for d in deltas if isinstance(d, TokenLogprobs)]
    assert "".join(t.text for t in probabilities.tokens).startswith(text)  # the tokens spell the reply
    paris = next(t for t in probabilities.tokens if "Paris" in t.text)
    assert -1 < paris.logprob <= 0 and len(paris.alternatives) == 3  # greedy: the likeliest, alternatives less so
    assert all(lp <= paris.logprob for _, lp in paris.alternatives)


async def test_same_seed_same_sample(cpu_backend):
    params = GenerationParams(temperature=1.0, top_p=1.0, top_k=50, max_new_tokens=20, seed=1234)
    request = ChatRequest(ask("Name a colour."), params)
    first, second = await deltas_of(cpu_backend, request), await deltas_of(cpu_backend, request)
    assert [d for d in first if isinstance(d, TextDelta)] == [d for d in second if isinstance(d, TextDelta)]


async def test_min_p_one_keeps_only_the_likeliest_token(cpu_backend):
    """min_p 1 keeps a token only if it is as likely as the likeliest: hot sampling then answers as greedy
    decoding does, where without it the same sampling wanders off."""

    async def reply(**knobs) -> str:
        request = ChatRequest(ask("Name three colours."), GenerationParams(max_new_tokens=24, **knobs))
        return "".join(d.text for d in await deltas_of(cpu_backend, request) if isinstance(d, TextDelta))

    hot = {"temperature": 2.0, "top_p": 1.0, "top_k": 1000, "seed": 7}
    greedy = await reply(temperature=0)
    assert await reply(**hot, min_p=1.0) == greedy
    assert await reply(**hot) != greedy


async def test_closing_the_stream_stops_generation_mid_reply(cpu_backend):
    request = ChatRequest(
        ask("Write a very long story about the sea."), GenerationParams(temperature=0, max_new_tokens=4000)
    )
    forward_passes = []
    counting = cpu_backend._model.register_forward_hook(lambda *_: forward_passes.append(1))
    try:
        stream = cpu_backend.stream_chat(request)
        received = [await anext(stream) for _ in range(3)]
        await stream.aclose()
        with cpu_backend._generate_lock:  # the generation has let go of the model
            passes = len(forward_passes)
    finally:
        counting.remove()
    assert all(isinstance(d, TextDelta) for d in received)
    assert passes < 100  # a token a pass: it stopped near the three deltas read, not at 4000 tokens


async def test_prompt_over_the_context_is_refused_with_advice(cpu_backend):
    with pytest.raises(PromptTooLong, match="clear the chat"):
        await deltas_of(cpu_backend, ChatRequest(ask("word " * 9000), GREEDY))


async def test_lmdeploys_qwen_parser_on_the_cpu_forces_and_reads_a_call(tool_template_folder):
    """A cpu preset with `tool_parser: qwen` and a model whose chat template knows tools: the
    template lists them, the parser's structural tag (compiled by xgrammar) forces the call,
    the parser reads it as it is written, and the loop runs it."""
    from backends.cpu import CpuBackend
    from tools.loop import run_tool_loop
    from tools.scenarios import SCENARIOS

    tools = SCENARIOS["add and multiply: (3 + 5) x 2"].tools
    backend = await asyncio.to_thread(CpuBackend, str(tool_template_folder), "qwen")
    named = {"type": "function", "function": {"name": "add"}}
    params = GenerationParams(temperature=0, max_new_tokens=60)
    request = ChatRequest([{"role": "user", "content": "What is 3 + 5?"}], params, tools, named)
    deltas = [d async for d in backend.stream_chat(request)]
    pieces = [d for d in deltas if isinstance(d, ToolCallPiece)]
    [call] = [d for d in deltas if isinstance(d, ToolCall)]
    assert pieces and pieces[0].name == "add" and deltas[-1] == Finish("tool_calls")
    assert set(json.loads(call.arguments)) == {"a", "b"}
    run = await run_tool_loop(backend, "What is 3 + 5?", tools, named, max_rounds=2)
    assert next(s for s in run.steps if s.kind == "tool_result").ok


# what each playground scenario's first call must be, run as the Tools tab runs it on the embedded model
FIRST_CALLS = {
    "add and multiply: (3 + 5) x 2": ("add", {"a": 3, "b": 5}),
    "weather": ("get_weather", {"city": "Shanghai"}),
    "unit conversion": ("convert_units", {"value": 26.2, "from_unit": "mi", "to_unit": "km"}),
    "current time": ("current_time", {"utc_offset_hours": 8}),
    "your own tool (schema only)": ("lookup_order", {"order_id": "A-1042"}),
}


async def test_each_tools_scenario_gets_its_first_call_right_from_the_small_model(cpu_backend):
    from tools.loop import run_tool_loop
    from tools.scenarios import SCENARIOS, tool_choice_value

    assert set(FIRST_CALLS) == set(SCENARIOS)
    for name, (tool, arguments) in FIRST_CALLS.items():
        scenario = SCENARIOS[name]
        choice = tool_choice_value(scenario.tool_choice)
        run = await run_tool_loop(cpu_backend, scenario.prompt, scenario.tools, choice, scenario.mock_results)
        call, result = [step for step in run.steps if step.kind in ("tool_call", "tool_result")][:2]
        assert (call.name, json.loads(call.content)) == (tool, arguments), name
        assert result.ok, (name, result.content)


async def test_a_chat_that_waits_hears_its_place_in_line_then_is_answered(cpu_backend):
    first = cpu_backend.stream_chat(ChatRequest(ask("Count to fifty."), GREEDY))
    await anext(first)  # the first chat holds the model
    second = cpu_backend.stream_chat(ChatRequest(ask("What is 2+3?"), GREEDY))
    told = await anext(second)
    await first.aclose()  # its turn ends: the second is served
    rest = [d async for d in second]
    assert told == Queued(1, "this CPU engine")
    assert any(isinstance(d, TextDelta) for d in rest)


async def test_each_cpu_weights_mode_holds_its_weights_as_it_claims_and_still_answers():
    """bf16 halves fp32; both int8 modes put the Linear layers in int8 (under half of fp32, the fp32
    embedding kept); each loads and answers, greedy, with text of its own."""
    from backends.cpu import CpuBackend

    held, replies = {}, {}
    for weights in ("fp32", "bf16", "int8-dynamic", "int8-weight-only"):
        backend = CpuBackend(None, None, weights)
        held[weights] = backend.info().details["weights_bytes"]
        assert backend.info().engine == f"transformers (CPU, {weights})"
        params = GenerationParams(temperature=0, max_new_tokens=12)
        deltas = await deltas_of(backend, ChatRequest(ask("What is 2+3?"), params))
        replies[weights] = "".join(d.text for d in deltas if isinstance(d, TextDelta))
        await backend.close()
    assert held["bf16"] == pytest.approx(held["fp32"] / 2, rel=0.01)
    for int8 in ("int8-dynamic", "int8-weight-only"):
        assert 0.3 * held["fp32"] < held[int8] < 0.5 * held["fp32"]
    assert all(reply.strip() for reply in replies.values())


@pytest.mark.parametrize("kv_cache", ["int4", "int2"])
async def test_each_kv_cache_mode_holds_a_token_in_the_bytes_it_claims_and_changes_the_scores(kv_cache):
    """The cache the backend makes holds a long text's keys and values in the bytes per token its info
    claims (within the exact window of the newest tokens), a fraction of fp32's; and perplexity, scored
    through that cache, differs from the exact cache's."""
    import torch

    from backends.cpu import CpuBackend

    text = "The history of the printing press begins in the fifteenth century. " * 60  # 780 tokens
    exact = CpuBackend()
    full_claim, full_score = exact.info().details["kv_bytes_per_token"], await exact.score_text(text)
    await exact.close()
    backend = CpuBackend(kv_cache=kv_cache)
    claim = backend.info().details["kv_bytes_per_token"]
    assert backend.info().engine == f"transformers (CPU, fp32, KV {kv_cache})"
    cache, ids = backend._new_cache(), backend._tokenizer(text, return_tensors="pt")["input_ids"][:, :600]
    assert ids.shape[1] == 600
    with torch.inference_mode():
        backend._model(input_ids=ids[:, :500], past_key_values=cache)  # the prompt: all quantized
        for position in range(500, 600):  # then token by token, as a reply grows: these stay exact
            backend._model(input_ids=ids[:, position : position + 1], past_key_values=cache)
    held = sum(_bytes_of(getattr(layer, name)) for layer in cache.layers for name in _CACHE_TENSORS)
    assert held == pytest.approx(500 * claim + 100 * full_claim, rel=0.02)
    assert claim < full_claim / 6
    score = await backend.score_text(text)
    assert score.tokens == full_score.tokens and score.mean_nll != pytest.approx(full_score.mean_nll, rel=1e-4)
    await backend.close()


_CACHE_TENSORS = ("keys", "values", "_quantized_keys", "_quantized_values")


def _bytes_of(tensor) -> int:
    """A tensor's bytes; quanto's quantized tensor by the tensors it is made of (data, scale, zero point)."""
    if hasattr(tensor, "__tensor_flatten__"):
        return sum(_bytes_of(getattr(tensor, name)) for name in tensor.__tensor_flatten__()[0])
    return tensor.numel() * tensor.element_size()
