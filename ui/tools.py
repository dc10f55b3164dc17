"""The Tools tab: define tools, watch the model call them, run them safely, see the wire."""

from __future__ import annotations

import json
import time
from contextlib import aclosing

import gradio as gr

from backends import BackendInfo, ToolCall, running_kind
from backends.tool_prompt import readable
from console.chat import REPAINT_S
from console.core import Console
from console.reproduce import curl_snippet, openai_snippet
from tools.definitions import ToolDefinitionError, ToolDefinitions, parse_tools, tool_names
from tools.loop import (
    MAX_ROUNDS,
    Step,
    ToolConversation,
    ToolRun,
    drive,
    edits_from_json,
    pending_as_json,
    run_pending,
)
from tools.scenarios import SCENARIOS, Scenario, tool_choice_value

from .errors import whole_number
from .tab_parts import Refresh, TabParts
from .unread import UnreadPaints

_FIRST = next(iter(SCENARIOS))
TOOL_PROMPTS = [
    ("the model's chat template, read by LMDeploy's parser (a preset's tool_parser)", "model"),
    ("the console's tool prompt (tools in the system prompt; any model)", "console"),
]


def build_tab(console: Console) -> TabParts:
    """Lay out the tab; its parts: its note on what the running engine does with tools."""
    scenario = SCENARIOS[_FIRST]
    support = gr.Markdown(_support_note(console))
    with gr.Row():
        with gr.Column(scale=1):
            picked = gr.Dropdown(list(SCENARIOS), value=_FIRST, label="Scenario")
            small_model = gr.Markdown(_small_model_note(scenario), elem_id="tools-scenario-note")
            tools_json = gr.Code(
                json.dumps(scenario.tools, indent=2),
                language="json",
                label="Tools (OpenAI `tools` JSON)",
                elem_id="tools-json",
            )
            mocks = gr.Code(
                json.dumps(scenario.mock_results, indent=2),
                language="json",
                label='Mock results for schema-only tools ({"tool name": "result"})',
            )
        with gr.Column(scale=1):
            prompt = gr.Textbox(scenario.prompt, label="Prompt", lines=2, elem_id="tools-prompt")
            with gr.Row():
                choice = gr.Dropdown(
                    _choices(scenario.tools),
                    value=scenario.tool_choice,
                    label="tool_choice (first round)",
                    allow_custom_value=True,
                )
                rounds = gr.Slider(1, MAX_ROUNDS, 4, step=1, label="round limit")
            tool_prompt = gr.Radio(
                TOOL_PROMPTS,
                value=_tool_prompt_that_runs(console),
                label="How the model sees its tools",
                elem_id="tools-prompt-kind",
            )
            with gr.Row():
                stepping = gr.Checkbox(
                    False, label="Step mode: pause before the tools run", elem_id="tools-step-mode", scale=2
                )
                run = gr.Button("Run", variant="primary", elem_id="tools-run", scale=1)
            transcript = gr.Chatbot(label="Transcript", height=420, elem_id="tools-transcript")
            pending = gr.Code(
                language="json",
                label='Calls waiting: edit "arguments", or set "result" to answer for the tool',
                visible=False,
                elem_id="tools-pending",
            )
            go_on = gr.Button("Run these calls and continue", visible=False, elem_id="tools-continue")
    conversation = gr.State()
    with gr.Accordion("Wire: each round's request and response", open=False):
        wire = gr.JSON(label="rounds")
        curl = gr.Code(language="shell", label="the first round as curl")
        python = gr.Code(language="python", label="the first round with the openai client")

    def load_scenario(name):
        chosen = SCENARIOS.get(name) if isinstance(name, str) else None
        if chosen is None:  # the name is not shown back: it came from a client, not from the list
            gr.Warning(f"No such scenario: pick one of {', '.join(SCENARIOS)}.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return (
            _small_model_note(chosen),
            json.dumps(chosen.tools, indent=2),
            json.dumps(chosen.mock_results, indent=2),
            chosen.prompt,
            gr.Dropdown(choices=_choices(chosen.tools), value=chosen.tool_choice),
        )

    def refresh_choices(text, current):
        refreshed = choices_for(text, current)
        return gr.Dropdown(choices=refreshed[0], value=refreshed[1]) if refreshed else gr.Dropdown()

    async def run_clicked(
        prompt_text, tools_text, selected, max_rounds, mocks_text, step_mode, prompt_kind, request: gr.Request
    ):
        """Run the loop, painting each round as the model writes it; step mode stops before the tools run."""
        try:
            talk, mock_results = _conversation(
                console, prompt_text, tools_text, selected, max_rounds, mocks_text, prompt_kind or "model"
            )
        except ValueError as exc:
            gr.Warning(str(exc))
            yield *_run_views(str(exc)), *_no_step()
            return
        async for views in _play(console, talk, mock_results, step_mode, UnreadPaints.of_request(request)):
            yield views

    async def continue_clicked(talk, pending_text, mocks_text, request: gr.Request):
        """Run the waiting calls as edited, then go on to the next calls (or the answer)."""
        try:
            if talk is None or not talk.pending:
                raise ValueError("no calls are waiting: press Run with step mode on")
            edits = edits_from_json(pending_text)
            mock_results = _mock_results(mocks_text)
        except ValueError as exc:
            gr.Warning(str(exc))
            yield (gr.skip(),) * 7  # the calls stay waiting, as the user left them
            return
        run_pending(talk, mock_results, edits)
        async for views in _play(console, talk, mock_results, True, UnreadPaints.of_request(request)):
            yield views

    async def tool_call(
        prompt: str,
        tools_json: str,
        tool_choice: str = "auto",
        max_rounds: int = 4,
        mock_results: str = "{}",
        tool_prompt: str = "model",
    ) -> dict:
        """Run the tool loop; tool_choice is auto, none, required or function:NAME; tool_prompt is model
        (the model's chat template and LMDeploy's parser, where the preset names one) or console.
        Returns steps and wire."""
        try:
            talk, mocks = _conversation(console, prompt, tools_json, tool_choice, max_rounds, mock_results, tool_prompt)
        except ValueError as exc:
            return {"error": str(exc)}
        async for _ in drive(console.backend, talk, mocks):
            pass
        return talk.run.as_json()

    picked.change(load_scenario, picked, [small_model, tools_json, mocks, prompt, choice], api_visibility="private")
    tools_json.blur(refresh_choices, [tools_json, choice], choice, api_visibility="private")
    views = [transcript, wire, curl, python, pending, go_on, conversation]
    run.click(
        run_clicked,
        [prompt, tools_json, choice, rounds, mocks, stepping, tool_prompt],
        views,
        api_visibility="private",
        concurrency_limit=None,
    )
    go_on.click(
        continue_clicked, [conversation, pending, mocks], views, api_visibility="private", concurrency_limit=None
    )
    gr.api(tool_call, api_name="tool_call", concurrency_limit=None)

    def engine_changed():
        """The note on what this engine does with tools, and the tool prompt preselected to what will run."""
        return _support_note(console), gr.Radio(value=_tool_prompt_that_runs(console))

    return TabParts(engine_view=Refresh(engine_changed, [support, tool_prompt]))


def _conversation(
    console: Console, prompt, tools_text, selected, max_rounds, mocks_text, tool_prompt
) -> tuple[ToolConversation, dict]:
    """A conversation ready to run, and the mock results; ValueError says what is wrong with the inputs."""
    definitions, mock_results = _checked_inputs(console, prompt, tools_text, mocks_text)
    if tool_prompt not in ("model", "console"):
        raise ValueError(f"tool_prompt is model or console, not {tool_prompt!r}")
    choice = tool_choice_value(selected or "auto")
    rounds = whole_number(max_rounds, "max_rounds")
    console.access.limits.check_tool_rounds(rounds)
    talk = ToolConversation.start(prompt, definitions.tools, choice, rounds, tool_prompt, definitions.notes)
    return talk, mock_results


def _checked_inputs(console: Console, prompt, tools_text, mocks_text) -> tuple[ToolDefinitions, dict]:
    """The tools and mock results; ValueError says what is wrong."""
    if not console.backend.supports_tools:
        raise ValueError(_support_note(console))
    if not prompt or not prompt.strip():
        raise ValueError("Type a prompt first.")
    try:
        definitions = parse_tools(tools_text)
    except ToolDefinitionError as exc:
        raise ValueError(f"Tools: {exc}") from exc
    return definitions, _mock_results(mocks_text)


def _mock_results(text) -> dict:
    try:
        mock_results = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"Mock results: not JSON: {exc}") from exc
    except RecursionError as exc:  # json gives up past Python's recursion limit
        raise ValueError('Mock results: nested too deeply; write them as {"tool name": "result"}') from exc
    if not isinstance(mock_results, dict):
        raise ValueError('Mock results must be a JSON object: {"tool name": "result"}')
    return mock_results


def _run_views(result) -> tuple:
    """Transcript, wire, and the first round as curl and as openai code; a string is a problem."""
    if isinstance(result, str):
        return [{"role": "assistant", "content": f"**{result}**"}], None, "", ""
    first = result.wire[0] if result.wire else None
    snippets = (curl_snippet(first), openai_snippet(first)) if first else ("", "")
    return _messages(result), result.as_json()["wire"], *snippets


async def _play(console: Console, talk: ToolConversation, mock_results: dict, step_mode: bool, unread: UnreadPaints):
    """The loop's views as the model writes and the tools run, at most every REPAINT_S, and the last.
    A loop whose page no longer reads them ends there, its engine request with it."""
    painted = 0.0
    async with aclosing(drive(console.backend, talk, mock_results, pause_before_tools=step_mode)) as steps:
        async for _ in steps:
            if unread.nobody_reads():
                return
            if time.monotonic() - painted >= REPAINT_S:
                painted = time.monotonic()
                yield _talk_views(talk)
    yield _talk_views(talk)


def _talk_views(talk: ToolConversation) -> tuple:
    """The transcript with the round under way, the wire, and the calls waiting (step mode)."""
    transcript, *wire = _run_views(talk.run)
    if talk.rounds > len(talk.run.wire) and not talk.finished:  # a round is being written
        calls = [f"calling {name or '…'} {arguments}" for name, arguments in talk.live_calls.values()]
        writing = "\n".join(filter(None, [readable(talk.live_text), *calls])) or "(writing…)"
        transcript = [*transcript, {"role": "assistant", "content": f"{writing} ▌"}]
    waiting = bool(talk.pending) and talk.rounds == len(talk.run.wire)
    if waiting:
        transcript = [*transcript, *map(_waiting_call, talk.pending)]
    return (
        transcript,
        *wire,
        gr.Code(pending_as_json(talk.pending) if waiting else "", visible=waiting),
        gr.Button(visible=waiting),
        talk if waiting else None,
    )


def _no_step() -> tuple:
    return gr.Code("", visible=False), gr.Button(visible=False), None


def _small_model_note(scenario: Scenario) -> str:
    return f"*On a small model:* {scenario.small_model}" if scenario.small_model else ""


def choices_for(tools_text: str, current: str) -> tuple[list[str], str] | None:
    """The tool_choice list for the tools as written now, and the choice kept (a function they no
    longer define falls back to auto); None while the tools do not parse."""
    try:
        choices = _choices(parse_tools(tools_text).tools)
    except ToolDefinitionError:
        return None
    return choices, current if current in choices else "auto"


def _choices(tools: list[dict]) -> list[str]:
    return ["auto", "none", "required", *(f"function:{name}" for name in tool_names(tools))]


def _tool_prompt_that_runs(console: Console) -> str:
    """ "model" where the model's template and LMDeploy's parser are used (a preset's tool_parser, or a
    server's own), else "console": picking "model" there would run the console's prompt anyway."""
    info = console.backend.info()
    return "model" if _server_parses_tools(info) or info.details.get("tool_parser") else "console"


def _server_parses_tools(info: BackendInfo) -> bool:
    return (kind := running_kind(info)) is not None and kind.server_parses_tools


def _support_note(console: Console) -> str:
    info = console.backend.info()
    if _server_parses_tools(info):
        return (
            "The server renders the tools with the model's chat template and parses its calls: "
            "`lmdeploy serve api_server` needs `--tool-call-parser` for the model's family (the playground "
            "says which when the server refuses). Built-in tools run here under a time limit; others are "
            "schema-only and take your mock result."
        )
    parser = info.details.get("tool_parser")
    if parser:
        return (
            f"With \"the model's chat template\", the model's own template lists the tools and LMDeploy's "
            f"`{parser}` parser reads its calls, as `lmdeploy serve api_server --tool-call-parser {parser}` "
            "does; a forced `tool_choice` is decoded under the parser's call format. The console's tool prompt "
            "is there to compare. Built-in tools run here under a time limit; others are schema-only and take "
            "your mock result."
        )
    if console.backend.supports_tools:
        return (
            "The model sees the tools in the console's tool prompt (its system prompt), whichever way is "
            "picked below: this engine has no tool parser (an lmdeploy preset's `tool_parser` names one for a "
            "model whose chat template knows tools). A forced `tool_choice` (required or a named "
            "function) holds its output to the tool's JSON schema, so even a small model makes a valid call. "
            "Built-in tools run here under a time limit; others are schema-only and take your mock result."
        )
    return f"No engine takes tools right now ({info.engine}): pick a preset on the Presets tab."


def _messages(run: ToolRun) -> list[dict]:
    rendered = []
    for step in run.steps:
        if step.kind == "user":
            rendered.append({"role": "user", "content": step.content})
        elif step.kind == "assistant":
            rendered.append({"role": "assistant", "content": step.content or "(no text)"})
        elif step.kind == "tool_call":
            title = _by_user(f"Call {step.name} {_short(step.content)}", step)
            rendered.append(
                {
                    "role": "assistant",
                    "content": f"```json\n{step.content}\n```",
                    "metadata": {"title": title, "status": "done"},
                }
            )
        elif step.kind == "tool_result":
            verb = "returned" if step.ok else "failed:"
            title = _by_user(f"{step.name or 'call'} {verb} {_short(step.content)}", step)
            rendered.append({"role": "assistant", "content": step.content, "metadata": {"title": title}})
        elif step.kind == "note":
            rendered.append({"role": "assistant", "content": step.content, "metadata": {"title": "Note"}})
        else:
            rendered.append({"role": "assistant", "content": f"**{step.content}**"})
    return rendered


def _waiting_call(call: ToolCall) -> dict:
    """A call the model made that waits for the user (step mode), as the transcript shows it."""
    return {
        "role": "assistant",
        "content": f"```json\n{call.arguments}\n```",
        "metadata": {
            "title": f"Call {call.name or '(malformed)'} {_short(call.arguments)}: waiting for you (edit it below, "
            "then Continue)",
            "status": "pending",
        },
    }


def _by_user(title: str, step: Step) -> str:
    return f"{title} ({_short(step.changed_by_user, 90)})" if step.changed_by_user else title


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
