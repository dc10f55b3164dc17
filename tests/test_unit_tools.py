import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends import (
    Backend,
    BackendError,
    BackendInfo,
    ChatRequest,
    Finish,
    GenerationParams,
    TextDelta,
    ToolCall,
    ToolCallPiece,
)
from backends.tool_prompt import forced_call_schema, parse_tool_calls, strip_tool_calls, tool_messages
from tools.definitions import ToolDefinitionError, ToolDefinitions, parse_tools
from tools.loop import run_tool_loop
from tools.scenarios import SCENARIOS, tool_choice_value
from tools.toolbox import BUILTIN, Tool, run_tool
from ui.tools import _mock_results

ADD, MULTIPLY = BUILTIN["add"], BUILTIN["multiply"]
GREEDY = GenerationParams(temperature=0)


def test_builtin_tools_run_with_checked_arguments():
    assert run_tool(ADD, '{"a": 3, "b": 5}').content == "8"
    assert json.loads(
        run_tool(BUILTIN["convert_units"], '{"value": 26.2, "from_unit": "mi", "to_unit": "km"}').content
    ) == {"value": 42.164813, "unit": "km"}
    assert json.loads(run_tool(BUILTIN["get_weather"], '{"city": "Shanghai"}').content)["condition"] == "light rain"
    assert len(run_tool(BUILTIN["current_time"], "{}").content) == 19


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ("{a: 3}", "not JSON"),
        ('{"a": 3}', "do not fit add's schema at arguments: 'b' is a required property"),
        ('{"a": "3", "b": 5}', "at a: '3' is not of type 'number'"),
        ('{"a": 1, "b": 2, "rm": "-rf"}', "Additional properties are not allowed"),
    ],
)
def test_bad_arguments_are_outcomes_not_exceptions(arguments, complaint):
    outcome = run_tool(ADD, arguments)
    assert not outcome.ok and complaint in outcome.content


def test_failing_slow_and_chatty_tools_are_contained():
    schema = {"type": "object", "properties": {}}
    failing = Tool("boom", "", schema, lambda: 1 / 0)
    assert "boom failed: division by zero" in run_tool(failing, "{}").content
    slow = Tool("slow", "", schema, lambda: time.sleep(2))
    assert "ran past its 0.2 s limit" in run_tool(slow, "{}", time_limit_s=0.2).content
    chatty = Tool("chatty", "", schema, lambda: "x" * 10_000)
    assert run_tool(chatty, "{}", max_chars=100).content.endswith("[cut at 100 characters]")


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_any_arguments_text_gives_an_outcome(arguments):
    outcome = run_tool(ADD, arguments)  # never raises
    if outcome.ok:
        parsed = json.loads(arguments)
        assert float(outcome.content) == parsed["a"] + parsed["b"]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[{", "not JSON (line 1, column 3)"),
        ('{"type": "function"}', "must be a JSON list"),
        ('[{"type": "tool"}]', '[0]: each tool is {"type": "function"'),
        ('[{"type": "function", "function": {"name": "a b"}}]', "[0].function.name must be letters"),
        (
            '[{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]',
            "[0] (f).function.parameters must be an object schema",
        ),
        (
            '[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": 5}}}]',
            "[0] (f).function.parameters/properties: 5 is not of type 'object'",
        ),
        (json.dumps([ADD.spec(), ADD.spec()]), "[1].function.name: 'add' is defined twice"),
    ],
)
def test_bad_tool_definitions_say_what_and_where(text, complaint):
    with pytest.raises(ToolDefinitionError) as caught:
        parse_tools(text)
    assert complaint in str(caught.value)


def test_every_scenario_is_valid():
    for scenario in SCENARIOS.values():
        assert parse_tools(json.dumps(scenario.tools)) == ToolDefinitions(scenario.tools)


def test_tool_prompt_for_templates_without_tools():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "3+5?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c0", "type": "function", "function": {"name": "add", "arguments": '{"a": 3, "b": 5}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c0", "content": "8"},
    ]
    rendered = tool_messages(messages, [ADD.spec()])
    assert (
        rendered[0]["content"].startswith("Be brief.\n\nYou can call these tools:")
        and '"name": "add"' in rendered[0]["content"]
    )
    assert rendered[2]["content"] == '<tool_call>{"name": "add", "arguments": {"a": 3, "b": 5}}</tool_call>'
    assert rendered[3] == {"role": "user", "content": "<tool_response>8</tool_response>"}


def test_calls_are_parsed_from_text_and_malformed_ones_kept_for_reporting():
    text = 'Sure.<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call><tool_call>oops</tool_call>'
    assert parse_tool_calls(text) == [("add", '{"a": 1, "b": 2}'), ("", "oops")]
    assert strip_tool_calls(text) == "Sure."


def test_forced_call_schemas():
    tools = [ADD.spec(), MULTIPLY.spec()]
    assert forced_call_schema(tools, "auto") is None
    assert len(forced_call_schema(tools, "required")["anyOf"]) == 2
    named = forced_call_schema(tools, tool_choice_value("function:multiply"))
    assert named["properties"]["name"] == {"const": "multiply"}
    with pytest.raises(ValueError, match="not among the tools"):
        forced_call_schema(tools, tool_choice_value("function:divide"))
    weather = forced_call_schema([BUILTIN["get_weather"].spec()], "required")
    assert weather["properties"]["arguments"]["properties"]["city"] == {"type": "string", "maxLength": 64}


class ScriptedToolModel(Backend):
    """Answers each request with the next scripted list of deltas (unit tier only)."""

    supports_tools = True

    def __init__(self, *rounds):
        self.rounds, self.requests = list(rounds), []

    def info(self):
        return BackendInfo("scripted", "script", "none")

    async def stream_chat(self, request):
        self.requests.append(request)
        if not self.rounds:
            raise BackendError("the script ran out")
        for delta in self.rounds.pop(0):
            yield delta


def call(name, arguments, index=0):
    return ToolCall(f"call_{index}", name, arguments)


async def test_call_result_answer():
    model = ScriptedToolModel(
        [call("add", '{"a": 3, "b": 5}'), Finish("tool_calls")],
        [call("multiply", '{"a": 8, "b": 2}'), Finish("tool_calls")],
        [TextDelta("(3 + 5) x 2 = 16"), Finish("stop")],
    )
    run = await run_tool_loop(model, "(3 + 5) x 2?", [ADD.spec(), MULTIPLY.spec()], "required")
    kinds = [(s.kind, s.name, s.content) for s in run.steps]
    assert kinds == [
        ("user", "", "(3 + 5) x 2?"),
        ("tool_call", "add", '{"a": 3, "b": 5}'),
        ("tool_result", "add", "8"),
        ("tool_call", "multiply", '{"a": 8, "b": 2}'),
        ("tool_result", "multiply", "16"),
        ("assistant", "", "(3 + 5) x 2 = 16"),
    ]
    assert [r.tool_choice for r in model.requests] == ["required", "auto", "auto"]
    last = model.requests[-1].messages
    assert last[-1] == {"role": "tool", "tool_call_id": "call_0", "content": "16"}
    assert len(run.wire) == 3 and run.wire[0]["response"]["tool_calls"][0]["function"]["name"] == "add"


async def test_parallel_calls_and_every_kind_of_bad_call():
    model = ScriptedToolModel(
        [
            call("add", '{"a": 1, "b": 2}', 0),
            call("divide", "{}", 1),
            call("", "not json", 2),
            call("add", '{"a": "x"}', 3),
            call("lookup", '{"id": "7"}', 4),
            Finish("tool_calls"),
        ],
        [TextDelta("done"), Finish("stop")],
    )
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    run = await run_tool_loop(model, "go", [ADD.spec(), lookup], mock_results={})
    results = [s for s in run.steps if s.kind == "tool_result"]
    assert [r.ok for r in results] == [True, False, False, False, False]
    assert "no tool named 'divide'" in results[1].content
    assert "not a tool call" in results[2].content
    assert "do not fit add's schema" in results[3].content
    assert "schema-only: type its result under Mock results" in results[4].content
    assert run.steps[-1].content == "done"  # the session went on


async def test_schema_only_tools_take_the_mock_result():
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    model = ScriptedToolModel([call("lookup", "{}"), Finish("tool_calls")], [TextDelta("shipped"), Finish("stop")])
    run = await run_tool_loop(model, "where?", [lookup], mock_results={"lookup": "shipped Friday"})
    assert [s.content for s in run.steps if s.kind == "tool_result"] == ["shipped Friday"]


async def test_a_loop_that_never_ends_hits_the_round_limit():
    model = ScriptedToolModel(*[[call("add", '{"a": 1, "b": 1}'), Finish("tool_calls")]] * 3)
    run = await run_tool_loop(model, "loop", [ADD.spec()], max_rounds=3)
    assert run.steps[-1].kind == "error" and "stopped after 3 rounds" in run.steps[-1].content


async def test_a_backend_error_ends_the_run_with_its_message():
    run = await run_tool_loop(ScriptedToolModel(), "hi", [ADD.spec()])
    assert run.steps[-1].kind == "error" and "the script ran out" in run.steps[-1].content


def test_streamed_tool_call_pieces_are_put_back_together():
    from backends.tool_calls import CallPieces

    calls = CallPieces()
    assert calls.add(0, "call_a", "add", "") == ToolCallPiece(0, "add", "")
    calls.add(1, "call_m", "multiply", '{"a"')
    calls.add(0, None, None, '{"a": 3, ')
    calls.add(1, None, None, ': 8, "b": 2}')
    calls.add(0, None, None, '"b": 5}')
    assert calls.whole() == [
        ToolCall("call_a", "add", '{"a": 3, "b": 5}'),
        ToolCall("call_m", "multiply", '{"a": 8, "b": 2}'),
    ]


def test_lmdeploys_own_qwen_parser_streams_a_named_call_in_pieces():
    """LMDeploy's path minus the engine: a named call is forced ("required" over that one tool,
    under the qwen parser's structural tag), the tools go to the chat template, and the parser
    turns the model's text into call pieces as the text arrives."""
    from backends.lmdeploy_tools import ParsedTurn

    named = {"type": "function", "function": {"name": "add"}}
    request = ChatRequest([{"role": "user", "content": "3 + 5?"}], GREEDY, [ADD.spec(), MULTIPLY.spec()], named)
    turn = ParsedTurn("qwen", request)
    assert [t["name"] for t in turn.template_tools] == ["add"]
    assert turn.response_format["type"] == "structural_tag" and turn.messages[-1]["content"] == "3 + 5?"

    text = 'Sure. <tool_call>\n{"name": "add", "arguments": {"a": 3, "b": 5}}\n</tool_call>'
    deltas = [d for start in range(0, len(text), 6) for d in turn.deltas(text[start : start + 6])]
    *rest, call = turn.finish()
    pieces = [d for d in [*deltas, *rest] if isinstance(d, ToolCallPiece)]
    assert [d for d in deltas if isinstance(d, TextDelta)] == [TextDelta("Sure. ")]
    assert len(pieces) >= 3 and pieces[0].name == "add"  # the name first, then the arguments bit by bit
    assert (call.name, json.loads(call.arguments)) == ("add", {"a": 3, "b": 5}) and call.id


def test_a_server_without_a_tool_parser_gets_the_flag_for_its_model():
    from backends.remote import _parser_hint

    assert "`--tool-call-parser qwen` fits Qwen2.5-7B-Instruct" in _parser_hint("http://h/v1", "Qwen2.5-7B-Instruct")
    assert "`--tool-call-parser internlm` fits internlm2_5-7b-chat" in _parser_hint(
        "http://h/v1", "internlm2_5-7b-chat"
    )
    assert "pick the parser of SmolLM2's family: deepseek-v32, glm47, internlm" in _parser_hint("u", "SmolLM2")


def test_the_openai_snippet_is_python_that_sends_the_same_request():
    from console.reproduce import openai_snippet

    wire_round = {
        "request": {
            "messages": [{"role": "user", "content": "it's 3+5"}],
            "tools": [ADD.spec()],
            "tool_choice": "required",
        }
    }
    snippet = openai_snippet(wire_round, model="internlm2_5-7b-chat")
    compile(snippet, "snippet", "exec")
    assert "tool_choice='required'" in snippet and "model='internlm2_5-7b-chat'" in snippet and "it's 3+5" in snippet


async def test_step_mode_runs_the_calls_as_the_user_edited_them():
    from tools.loop import ToolConversation, ask_model, edits_from_json, pending_as_json, run_pending

    model = ScriptedToolModel(
        [ToolCall("c1", "add", '{"a": 3, "b": 5}'), ToolCall("c2", "lookup", "{}"), Finish("tool_calls")],
        [TextDelta("The answer is 9."), Finish("stop")],
    )
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    talk = ToolConversation.start("go", [ADD.spec(), lookup], "required")
    seen = [len(talk.pending) async for _ in ask_model(model, talk)]
    assert seen == [1, 2, 2]  # the calls show up as they arrive
    assert [c.name for c in talk.pending] == ["add", "lookup"] and not talk.finished
    waiting = json.loads(pending_as_json(talk.pending))
    waiting[0]["arguments"]["b"] = 6  # the user changes an argument
    waiting[1]["result"] = {"status": "shipped"}  # and answers for the schema-only tool
    run_pending(talk, {}, edits_from_json(json.dumps(waiting)))
    results = [s.content for s in talk.run.steps if s.kind == "tool_result"]
    assert results == ["9", '{"status": "shipped"}']
    # the transcript says what was the user's: the edited arguments, the typed result; the rest is the model's
    changed = [(s.kind, s.name, s.changed_by_user) for s in talk.run.steps if s.kind.startswith("tool")]
    assert changed == [
        ("tool_call", "add", 'arguments edited by you; the model wrote {"a": 3, "b": 5}'),
        ("tool_result", "add", ""),
        ("tool_call", "lookup", ""),
        ("tool_result", "lookup", "typed by you, not run"),
    ]
    assert talk.messages[-2] == {"role": "tool", "tool_call_id": "c1", "content": "9"}
    written = [talk.live_text async for _ in ask_model(model, talk)]
    assert written[0] == "The answer is 9." and talk.live_text == ""  # streamed, then a step
    assert talk.finished and talk.run.steps[-1].content == "The answer is 9."


async def test_calls_waiting_in_step_mode_are_in_the_transcript_and_edits_are_marked_as_the_user_s():
    from tools.loop import ToolConversation, ask_model, edits_from_json, pending_as_json, run_pending
    from ui.tools import _talk_views

    model = ScriptedToolModel([ToolCall("c1", "add", '{"a": 3, "b": 5}'), Finish("tool_calls")])
    talk = ToolConversation.start("What is 3 + 5?", [ADD.spec()], "required")
    async for _ in ask_model(model, talk):
        pass
    transcript = _talk_views(talk)[0]
    assert transcript[-1]["metadata"]["status"] == "pending"
    assert transcript[-1]["metadata"]["title"].startswith('Call add {"a": 3, "b": 5}: waiting for you')
    waiting = json.loads(pending_as_json(talk.pending))
    waiting[0]["arguments"]["b"] = 6
    run_pending(talk, {}, edits_from_json(json.dumps(waiting)))
    call, result = _talk_views(talk)[0][-2:]
    assert call["metadata"]["title"] == (
        'Call add {"a": 3, "b": 6} (arguments edited by you; the model wrote {"a": 3, "b": 5})'
    )
    assert result["metadata"]["title"] == "add returned 9"


def test_edits_that_are_not_the_waiting_calls_say_so():
    from tools.loop import edits_from_json

    with pytest.raises(ValueError, match="not JSON any more"):
        edits_from_json("[{")
    with pytest.raises(ValueError, match='each with its "id"'):
        edits_from_json('{"a": 1}')
    with pytest.raises(ValueError, match="nested too deeply"):
        edits_from_json("[" * 5000 + "]" * 5000)


def test_the_round_being_written_shows_in_the_transcript():
    from tools.loop import ToolConversation
    from ui.tools import _talk_views

    talk = ToolConversation.start("What is 3 + 5?", [ADD.spec()])
    talk.rounds, talk.live_text = 1, 'Let me call <tool_call>{"name": "add'
    transcript, *_rest, pending, _button, state = _talk_views(talk)
    assert transcript[-1]["content"].endswith("add ▌") and state is None
    talk.live_text, talk.live_calls = "", {0: ["", '{"name": "add", "argu']}  # a forced call's JSON
    assert _talk_views(talk)[0][-1]["content"] == 'calling … {"name": "add", "argu ▌'
    talk.live_calls = {0: ["add", '{"a": 3'], 1: ["multiply", ""]}  # a parser's pieces, two calls at once
    assert _talk_views(talk)[0][-1]["content"] == 'calling add {"a": 3\ncalling multiply  ▌'


# LMDeploy's own tools example (docs/en/llm/api_server_tools.md, as the InternLM tutorial runs it):
# Python type names where JSON Schema has its own.
LMDEPLOY_DOCS_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Compute the sum of two numbers",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "int", "description": "A number"}, "b": {"type": "int"}},
                "required": ["a", "b"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "mul",
            "parameters": {"type": "object", "properties": {"a": {"type": "float"}, "b": {"type": "float"}}},
        },
    },
]


def test_python_type_names_are_read_as_json_schema_s_and_said_so():
    definitions = parse_tools(json.dumps(LMDEPLOY_DOCS_TOOLS))
    add = definitions.tools[0]["function"]["parameters"]["properties"]
    assert add["a"]["type"] == "integer" and definitions.tools[1]["function"]["parameters"]["properties"]["b"] == {
        "type": "number"
    }
    assert definitions.notes == (
        "add: read the type names int -> integer as JSON Schema's",
        "mul: read the type names float -> number as JSON Schema's",
    )
    with pytest.raises(ToolDefinitionError, match="'integr' is not valid"):  # what is really malformed still is
        parse_tools(
            json.dumps(
                [
                    {
                        **ADD.spec(),
                        "function": {
                            "name": "f",
                            "parameters": {"type": "object", "properties": {"a": {"type": "integr"}}},
                        },
                    }
                ]
            )
        )


def test_tools_nested_thousands_deep_are_refused_with_a_reason():
    with pytest.raises(ToolDefinitionError, match="nested too deeply"):
        parse_tools("[" * 5000 + "]" * 5000)


async def test_the_user_s_own_add_runs_the_built_in_where_both_schemas_take_the_call():
    model = ScriptedToolModel(
        [ToolCall("c1", "add", '{"a": 3, "b": 5}'), Finish("tool_calls")],
        [ToolCall("c2", "add", '{"a": 3.5, "b": 5}'), Finish("tool_calls")],
        [ToolCall("c3", "add", '{"a": 3}'), Finish("tool_calls")],
        [TextDelta("done"), Finish("stop")],
    )
    tools = parse_tools(json.dumps(LMDEPLOY_DOCS_TOOLS)).tools
    run = await run_tool_loop(model, "3 + 5?", tools, notes=("a note",))
    assert run.steps[1].kind == "note" and run.steps[1].content == "a note"
    results = [s for s in run.steps if s.kind == "tool_result"]
    assert (results[0].ok, results[0].content) == (True, "8")
    assert (
        not results[1].ok and "your definition of add's schema at a: 3.5 is not of type 'integer'" in results[1].content
    )
    assert not results[2].ok and "'b' is a required property" in results[2].content


async def test_the_transcript_reads_as_people_read_it_and_the_wire_keeps_the_raw_text():
    model = ScriptedToolModel(
        [call("add", '{"a": 3, "b": 5}'), Finish("tool_calls")],
        [TextDelta("<tool_response>8</tool_response>"), Finish("stop")],  # SmolLM2 echoing the markup
    )
    run = await run_tool_loop(model, "3 + 5?", [ADD.spec()])
    assert run.steps[-1].kind == "assistant" and run.steps[-1].content == "8"
    assert run.wire[-1]["response"]["content"] == "<tool_response>8</tool_response>"


def test_the_tool_choice_list_drops_a_function_whose_tool_is_gone():
    from ui.tools import choices_for

    both = json.dumps([ADD.spec(), MULTIPLY.spec()])
    assert choices_for(both, "function:multiply") == (
        ["auto", "none", "required", "function:add", "function:multiply"],
        "function:multiply",
    )
    assert choices_for(json.dumps([ADD.spec()]), "function:multiply") == (
        ["auto", "none", "required", "function:add"],
        "auto",
    )
    assert choices_for("[not json", "function:add") is None  # the list waits until the tools parse


def test_mock_results_nested_thousands_deep_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="Mock results: nested too deeply"):
        _mock_results("[" * 5000 + "]" * 5000)


def test_a_call_nested_thousands_deep_waits_as_the_text_the_model_wrote():
    from tools.loop import pending_as_json

    nested = "[" * 5000 + "]" * 5000
    (waiting,) = json.loads(pending_as_json([ToolCall("c1", "add", nested)]))
    assert waiting["arguments"] == nested
