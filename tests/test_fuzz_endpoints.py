"""Every endpoint of the running app, fuzzed: whatever comes in (numbers beyond 64 bits, NaN, huge or
deeply nested text), the caller gets a result or an error that says what to change, never Gradio's
bare "the upstream Gradio app has raised an exception"."""

import json

import pytest
from gradio_client import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from quantize.checks import GROUP_SIZES

pytestmark = pytest.mark.app

BARE = "has raised an exception but has not enabled verbose error reporting"
NUMBERS = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 2**63, 2**64 + 1]),
)
TEXT = st.one_of(
    st.text(max_size=200),
    st.integers(1, 6_000).map(lambda depth: "[" * depth + "]" * depth),  # nested past any recursion limit
    st.integers(1, 6_000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
)
# no shrinking: each example is a round trip to the app, and the failing input is printed as found
FUZZ = settings(
    max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate]
)


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def answered(client, *args, **kwargs):
    """The endpoint's result, or its error; fails only on the bare exception."""
    try:
        return client.predict(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any error is fine as long as it says something
        assert BARE not in str(exc), f"{kwargs.get('api_name')}: a bare exception for {args} {kwargs}"
        return exc


@FUZZ
@given(
    temperature=NUMBERS, top_p=NUMBERS, top_k=NUMBERS, max_new_tokens=NUMBERS, repetition_penalty=NUMBERS, seed=NUMBERS
)
def test_chat_knobs(client, temperature, top_p, top_k, max_new_tokens, repetition_penalty, seed):
    knobs = dict(temperature=temperature, top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty, seed=seed)
    for name, value in knobs.items():  # one knob out of its way at a time, the rest sane: a short reply at most
        answered(client, message="hi", max_new_tokens=1, **{name: value}, api_name="/chat")
    answered(client, message="hi", max_new_tokens=max_new_tokens if max_new_tokens != 1 else 0, api_name="/chat")


@FUZZ
@given(message=TEXT, system_prompt=TEXT, stop_words=TEXT)
def test_chat_text(client, message, system_prompt, stop_words):
    answered(
        client, message=message, system_prompt=system_prompt, stop_words=stop_words, max_new_tokens=1, api_name="/chat"
    )
    answered(client, system_prompt=system_prompt, max_new_tokens=1, temperature=float("nan"), api_name="/regenerate")


@FUZZ
@given(tools_json=TEXT, tool_choice=TEXT, max_rounds=NUMBERS, mock_results=TEXT, tool_prompt=TEXT)
def test_tool_call(client, tools_json, tool_choice, max_rounds, mock_results, tool_prompt):
    arguments = dict(tool_choice=tool_choice, max_rounds=max_rounds, mock_results=mock_results, tool_prompt=tool_prompt)
    result = answered(client, prompt="What is 3 + 5?", tools_json=tools_json, **arguments, api_name="/tool_call")
    if isinstance(result, dict) and "error" in result:
        assert result["error"]


@FUZZ
@given(name=TEXT)
def test_switch_preset_by_any_name(client, name):
    listing = {entry["name"] for entry in client.predict(api_name="/presets")}
    if name in listing:
        return  # a real switch: tested elsewhere
    result = answered(client, name, api_name="/switch_preset")
    assert not result["ok"] and result["error"]


@FUZZ
@given(
    max_new_tokens=NUMBERS,
    requests_at_once=NUMBERS,
    load_requests=NUMBERS,
    load_prompt_tokens=NUMBERS,
    load_output_tokens=NUMBERS,
    load_in_flight=NUMBERS,
    goodput_ttft_ms=NUMBERS,
    goodput_user_tps=NUMBERS,
    own_prompts=TEXT,
    own_questions=TEXT,
    load_sweep=TEXT,
)
def test_compare_settings(client, own_prompts, own_questions, load_sweep, **numbers):
    # one preset: however the rest is read, the comparison is refused before anything runs
    result = answered(
        client,
        presets=["cpu"],
        names=["math"],
        own_prompts=own_prompts,
        own_questions=own_questions,
        load_test=True,
        load_sweep=load_sweep,
        **numbers,
        api_name="/compare",
    )
    assert isinstance(result, Exception), result
    assert any(reason in str(result) for reason in REFUSALS), str(result)


# what a refused setting may say: the console's own checks, Gradio's bounds of a page control, and
# gradio_client's refusal to put an infinite or NaN float into JSON
REFUSALS = ("pick 2 to 4 presets", "must be", "a sweep", "minimum value", "maximum value", "not JSON compliant")


def whole_in(value, low: int, high: int) -> bool:
    try:
        return float(value) == int(value) and low <= int(value) <= high
    except (ValueError, OverflowError):
        return False


@FUZZ
@given(output_folder=TEXT, new_preset_name=TEXT, group_size=NUMBERS, samples_n=NUMBERS, seq_len=NUMBERS)
def test_quantize_settings(client, output_folder, new_preset_name, group_size, samples_n, seq_len):
    """The Check button reads the settings as Quantize does, past Quantize's first refusal here (no GPU)."""
    verdict = answered(
        client,
        "embedded: SmolLM2-135M-Instruct",
        output_folder,
        new_preset_name,
        group_size,
        samples_n,
        seq_len,
        "float16",
        None,
        False,
        "awq",
        api_name="/check_quantize",
    )
    if isinstance(verdict, Exception):  # the page's own bounds, checked by Gradio before the console reads them
        assert group_size not in GROUP_SIZES or any(reason in str(verdict) for reason in REFUSALS), str(verdict)
        return
    assert verdict.startswith(("Cannot start:", "Not ready:")), verdict  # never ready without a GPU
    readable = whole_in(group_size, -(2**80), 2**80) and whole_in(samples_n, 1, 1024) and whole_in(seq_len, 16, 8192)
    if not readable or not output_folder.strip() or not new_preset_name.strip():
        assert verdict.startswith("Cannot start:"), verdict


@FUZZ
@given(url=TEXT, terminate=st.one_of(st.booleans(), NUMBERS))
def test_fleet_actions_by_any_url(client, url, terminate):
    for result in (
        answered(client, url, api_name="/fleet_add"),
        answered(client, url, terminate, api_name="/fleet_remove"),
    ):
        assert not isinstance(result, dict) or (result["ok"] is False and result["error"])


def test_endpoints_without_parameters_answer(client):
    for name in ("/stop", "/clear", "/presets", "/engine_status", "/vram", "/fleet", "/export_chat"):
        assert not isinstance(answered(client, api_name=name), Exception), name
    assert client.predict(api_name="/edit_last") == ([], "")  # a new session: no message to take back
    json.dumps(client.predict(api_name="/vram"))  # plain data


def call_raw(app_url: str, api_name: str, data: list) -> tuple[str, object]:
    """Call an endpoint with JSON written by hand (NaN, Infinity and lone surrogates included, as any
    HTTP client can send them); returns the last event: ("complete", outputs) or ("error", message)."""
    import httpx

    base = f"{app_url.rstrip('/')}/gradio_api/call{api_name}"
    body = json.dumps({"data": data})  # allow_nan: NaN and Infinity go out as JavaScript writes them
    started = httpx.post(base, content=body, headers={"Content-Type": "application/json"}, timeout=60)
    if started.status_code != 200:  # refused before it was queued: Gradio says why in the body
        return "error", started.text
    event, payload = None, None
    with httpx.stream("GET", f"{base}/{started.json()['event_id']}", timeout=300) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                payload = json.loads(line.removeprefix("data:"))
    return event, payload


def is_bare(event: str, payload) -> bool:
    """Gradio's answer to an exception nothing caught: an error event with no message."""
    return event == "error" and not (payload.get("error") if isinstance(payload, dict) else payload)


WRONG_JSON = [None, "text", [1], {"a": 1}, True, float("nan"), float("inf"), -float("inf"), "\ud800"]


@pytest.fixture(scope="module")
def endpoints(client) -> dict[str, list[dict]]:
    named = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    return {name: info["parameters"] for name, info in named.items() if not name.startswith("/lambda")}


# what keeps a call short: one token of reply, a comparison of one preset (refused), no node to reach
SHORT = {"max_new_tokens": 1, "presets": ["cpu"], "url": "http://127.0.0.1:9/v1", "max_rounds": 1}
# endpoints that act on the running engine or the fleet whatever their arguments: left to their own tests
ACTING = {"/restart_engine", "/switch_preset", "/fleet_remove"}


def sane_arguments(parameters: list[dict]) -> list:
    return [SHORT.get(p["parameter_name"], p.get("parameter_default")) for p in parameters]


def test_every_argument_of_every_endpoint_takes_any_json_and_answers_with_a_reason(app_url, endpoints):
    bare = []
    for name, parameters in sorted(endpoints.items()):
        if name in ACTING:
            continue
        for index, parameter in enumerate(parameters):
            for value in WRONG_JSON:
                data = sane_arguments(parameters)
                data[index] = value
                if is_bare(*call_raw(app_url, name, data)):
                    bare.append(f"{name} {parameter['parameter_name']}={value!r}")
    assert not bare, bare


def test_every_endpoint_called_without_its_arguments_answers_with_a_reason(app_url, endpoints):
    bare = [name for name in sorted(endpoints) if name not in ACTING and is_bare(*call_raw(app_url, name, []))]
    assert not bare, bare


# the page's own events that change the engine, a saved preset, the fleet or run a tool loop whatever the
# arguments: each has its own tests, and the /api twin of each is fuzzed above
PAGE_ACTING = {
    "switch_to", "go_back", "restart_clicked", "save_yaml", "switch_side_a", "run_clicked", "continue_clicked",
    "add_clicked", "remove_clicked", "terminate_clicked", "switch_clicked", "pin_clicked",
}  # fmt: skip


# Gradio's own refusals of a value its component cannot take, which name the input
GRADIO_REFUSES = ("Could not preprocess input component", "1 validation error for FileData")


def unexplained(completed: dict) -> bool:
    """An exception the console did not catch: Gradio passes on its text (show_error), which is no reason.
    A refusal the console means carries a title (gr.Error); a success may carry a warning."""
    output = completed.get("output") or {}
    if completed.get("success") or "title" in output:
        return False
    return not str(output.get("error") or "").startswith(GRADIO_REFUSES)


def test_every_input_of_the_page_s_own_events_takes_any_json_and_answers_with_a_reason(app_url):
    import uuid

    import httpx

    from bench.gradio_stream import GradioEndpoint

    endpoint = GradioEndpoint(app_url, "chat")  # any of its events, as the page sends them
    config = httpx.get(f"{app_url}config", timeout=30).json()
    kinds = {c["id"]: c["type"] for c in config["components"]}
    first_values = {c["id"]: (c.get("props") or {}).get("value") for c in config["components"]}
    for c in config["components"]:  # a chat the fuzzing lets through answers in one token
        if (c.get("props") or {}).get("elem_id") == "max-new-tokens":
            first_values[c["id"]] = 1
    events = [
        d
        for d in config["dependencies"]
        if d.get("backend_fn") and d.get("api_visibility") == "private" and d.get("api_name") not in PAGE_ACTING
    ]
    bare, fuzzed = [], 0
    for event in events:
        sent = [i for i in event["inputs"] if kinds.get(i) != "state"]  # a State is held by the server
        sane = [first_values.get(i) for i in sent]
        for index, component in enumerate(sent):
            for value in WRONG_JSON:
                data = [*sane[:index], value, *sane[index + 1 :]]
                *_, (_, completed) = endpoint.events(event["id"], data, uuid.uuid4().hex)
                fuzzed += 1
                if unexplained(completed):
                    error = (completed.get("output") or {}).get("error")
                    bare.append(f"{event['api_name']} input {index} ({kinds.get(component)})={value!r}: {error}")
    assert fuzzed > 100  # the page's chat, import, presets, tools and fleet events were reached
    assert not bare, bare
