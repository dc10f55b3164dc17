"""The Chat tab: streaming chat with the knobs people turn, and its `/chat` API endpoint."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable

import gradio as gr

from backends import SAMPLING_RANGES, GenerationParams
from console.access import OverLimit
from console.chat import ChatSession, Turn, message_problem, repaired_text
from console.core import Console
from console.token_view import SHOWN_ALTERNATIVES
from console.transcript import TranscriptError, export_chat, import_chat

from .downloads import download_folder
from .preset_knobs import PresetKnobs
from .render import chatbot_messages, display_text, format_stop_words, parse_stop_words
from .tab_parts import TabParts
from .unread import UnreadPaints


class ChatPainter:
    """The Chatbot's value for the chat and regenerate events, already in the form Gradio sends to the
    page, so those events skip Gradio's postprocessing (`postprocess=False`).

    A streaming paint hands over the whole chat; Gradio would convert every message again on every
    paint (a paint cost 1.8x more at turn 50 than at turn 1). Each message is converted once
    here, by the Chatbot's own postprocess, and reused while its text is unchanged; while a reply
    streams, `for_reply` spares even the lookups: a paint converts only the reply."""

    def __init__(self, chatbot: gr.Chatbot, kept_messages: int = 1024):
        self._chatbot = chatbot
        self._converted = functools.lru_cache(maxsize=kept_messages)(self._convert)

    def __call__(self, session: ChatSession) -> list[dict]:
        return self._paint(session.turns)

    def for_reply(self) -> Callable[[ChatSession], list[dict]]:
        """A painter for one streaming reply, the session's last turn. The turns before it stay as they
        are while it streams, so they are shown once and kept; had they changed (an edit mid-reply), a
        paint shows them anew. Rendering and looking up every earlier turn on each paint was a third of
        what a paint cost more at turn 50 than at turn 1 (py-spy, paced server)."""
        kept: list[Turn] = []
        painted: list[dict] = []

        def paint(session: ChatSession) -> list[dict]:
            nonlocal kept, painted
            earlier, reply = session.turns[:-1], session.turns[-1:]
            if len(earlier) != len(kept) or any(a is not b for a, b in zip(earlier, kept, strict=True)):
                kept, painted = earlier, self._paint(earlier)
            return painted + self._paint(reply)

        return paint

    def _paint(self, turns: list[Turn]) -> list[dict]:
        return [sent for turn in turns for sent in self._converted(turn.role, display_text(turn))]

    def _convert(self, role: str, text: str) -> tuple[dict, ...]:
        return tuple(self._chatbot.postprocess([{"role": role, "content": text}]).model_dump())


def build_tab(console: Console) -> TabParts:
    """Lay out the tab inside the current Blocks context and wire its events; its parts hold what keeps
    the generation knobs on the running preset's settings (`PresetKnobs`)."""
    defaults = console.state().default_params
    session = gr.State(ChatSession())
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(label="Chat", height=520, elem_id="chatbot", buttons=["copy", "copy_all"])
            paint = ChatPainter(chatbot)
            with gr.Row():
                message = gr.Textbox(  # the label is the box's name for screen readers
                    label="Message",
                    placeholder="Type a message and press Enter",
                    show_label=False,
                    scale=5,
                    elem_id="chat-input",
                )
                send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
            with gr.Row():
                stop = gr.Button("Stop", size="sm", elem_id="stop")
                regenerate = gr.Button("Regenerate", size="sm")
                edit_last = gr.Button("Edit last message", size="sm")
                clear = gr.Button("Clear", size="sm")
            with gr.Row():
                export = gr.Button("Export JSON", size="sm")
                upload = gr.UploadButton(
                    "Import JSON", file_types=[".json"], type="binary", size="sm", elem_id="import-chat"
                )
                exported = gr.File(label="Exported chat", visible=False, interactive=False, elem_id="exported-chat")
        with gr.Column(scale=1):
            system = gr.Textbox("", label="System prompt", lines=3)
            with gr.Accordion("Generation", open=True):
                sliders = [_slider(name, defaults) for name in SAMPLING_RANGES]
                seed = gr.Number(-1, precision=0, label="seed (-1 = random)")
                stops = gr.Textbox("", label="stop words (one a line; \\n for newline)", lines=2)
                probabilities = gr.Checkbox(
                    defaults.logprobs > 0,
                    label="Colour the reply by token probability (hover a token: its alternatives)",
                    elem_id="token-probabilities",
                )

            follower = PresetKnobs(console, [*sliders, seed, stops, probabilities], _param_values)

    knobs = [system, *sliders, seed, stops, probabilities]

    @_endpoint("message")
    async def chat(message, *values):
        """Send a message and stream the reply."""
        *knob_values, state, request = values
        message = repaired_text(message)
        if state.streaming():  # one reply at a time in a chat; the message stays the user's
            gr.Warning("A reply is still streaming: wait for it, or press Stop. Your message is kept in the box.")
            yield gr.skip(), message
            return
        if problem := message_problem(message):
            gr.Warning(problem)
            yield paint(state), message
            return
        if problem := _apply_knobs(console, state, *knob_values):
            gr.Warning(problem)
            yield paint(state), message
            return
        try:
            slot = console.chat_slots.take(who_is_asking(request))
        except OverLimit as exc:
            gr.Warning(f"{exc}. Your message is kept in the box.")
            yield paint(state), message
            return
        with slot:
            state.turns.append(Turn("user", message))
            async for painted in _stream(console, state, paint, request):
                yield painted, ""  # the same "" each paint: nothing for Gradio to convert or send
        if (refused := state.withdraw_refused()) is not None:  # back in the box, out of the history
            yield paint(state), refused

    @_endpoint()
    async def regenerate_last(*values):
        """Generate the last reply again, with the current knobs."""
        *knob_values, state, request = values
        if state.streaming():
            gr.Warning("A reply is still streaming: wait for it, or press Stop.")
            yield gr.skip()
            return
        if state.last_user_index() is None:
            gr.Warning("Nothing to regenerate yet.")
            yield paint(state)
            return
        if problem := _apply_knobs(console, state, *knob_values):
            gr.Warning(problem)
            yield paint(state)
            return
        try:
            slot = console.chat_slots.take(who_is_asking(request))
        except OverLimit as exc:
            gr.Warning(str(exc))
            yield paint(state)
            return
        with slot:
            if state.turns[-1].role == "assistant":
                state.turns.pop()
            async for painted in _stream(console, state, paint, request):
                yield painted

    def stop_streaming(state):
        """Stop the reply that is streaming: it keeps its text, and its own last paint says "stopped"."""
        if not state.stop_reply():
            gr.Info("Nothing is streaming: Stop ends a reply while it is being written.")

    def edit(state):
        text = state.rewind_to_last_user()
        if text is None:
            gr.Warning("There is no message to edit.")
        return chatbot_messages(state), state, text or ""

    def clear_chat(state):
        return [], ChatSession(system_prompt=state.system_prompt, params=state.params)

    def export_json(state):
        produced = console.state()
        path = download_folder() / time.strftime("chat-%Y%m%d-%H%M%S.json")
        path.write_text(export_chat(state, produced.info, produced.preset), encoding="utf-8")
        return gr.File(value=str(path), visible=True)

    def import_json(data: bytes, state):
        try:
            imported = import_chat(data)
        except TranscriptError as exc:
            gr.Warning(f"Import failed: {exc}")
            return chatbot_messages(state), state, *_knob_values(state), gr.skip()
        return chatbot_messages(imported), imported, *_knob_values(imported), True

    # The second output is what `chat` did not take ("" when it took the message). Not the session:
    # it changes in place, and a State output costs every paint.
    streaming = dict(
        concurrency_limit=None,
        # Enter while a reply streams reaches `chat`, which says why it waits, instead of being
        # swallowed by the page without a word
        trigger_mode="multiple",
        postprocess=False,  # ChatPainter gives the Chatbot's value as Gradio sends it
        # Gradio hands each input's preprocessing to a worker thread and back (a dozen hand-offs a chat,
        # 13% of the console's CPU with 256 chats starting at once, profiled): `chat` checks its inputs
        # itself, as an API call may send anything
        preprocess=False,
    )
    gr.on([], chat, [message, *knobs, session], [chatbot, message], api_name="chat", **streaming)
    # The page's own send keeps the box out of the stream's outputs, so that the box stays the user's
    # to type in while the reply streams: the page empties it as it sends (no server round trip) and
    # puts back, after the stream, a message `chat` did not take. Every paint leaving the box alone
    # with gr.skip() made Gradio build a Textbox (the costliest output with hundreds streaming);
    # painting it "" instead wiped what the user had typed meanwhile (tried in Chromium).
    on_its_way, not_taken = gr.Textbox(visible=False), gr.Textbox(visible=False)
    gr.on(
        [message.submit, send.click],
        None,
        message,
        [on_its_way, message],
        js="(typed) => [typed, '']",
        trigger_mode="multiple",
    ).then(
        chat,
        [on_its_way, *knobs, session],
        [chatbot, not_taken],
        api_name="chat_from_page",
        api_visibility="private",
        **streaming,
    ).then(None, [not_taken, message], message, js=BACK_IN_THE_BOX, trigger_mode="multiple")
    regenerate.click(
        regenerate_last,
        [*knobs, session],
        chatbot,
        api_name="regenerate",
        concurrency_limit=None,
        postprocess=False,
        preprocess=False,
    )
    # Not Gradio's `cancels`: its cancel runs as an event of its own, and a paint still in flight
    # from the cancelled stream could land after Stop's repaint (seen in the browser tier). The
    # stream ends itself instead and paints "stopped" last.
    stop.click(stop_streaming, session, None, api_name="stop", concurrency_limit=None)
    edit_last.click(edit, session, [chatbot, session, message], api_name="edit_last")
    clear.click(clear_chat, session, [chatbot, session], api_name="clear")
    chatbot.clear(clear_chat, session, [chatbot, session], api_visibility="private")  # its own trash icon
    export.click(export_json, session, exported, api_name="export_chat").then(
        None, js=DOWNLOAD_EXPORTED, api_visibility="private"
    )
    # an imported chat brings its own settings: the page keeps them as its user's through a switch
    upload.upload(
        import_json, [upload, session], [chatbot, session, *knobs, follower.touched], api_visibility="private"
    )
    return TabParts(preset_knobs=follower)


async def _stream(console: Console, state: ChatSession, painter: ChatPainter, request: gr.Request | None):
    """Chatbot values to paint while the reply streams; warns once if the reply failed. A reply that
    nobody reads (its client never opened the event stream) is stopped, as Stop would."""
    paint = painter.for_reply()
    unread = UnreadPaints.of_request(request)
    async for painted in console.replies.stream(state):
        if unread.nobody_reads():
            state.stop_reply()
        yield paint(painted)
    error = state.turns[-1].stats.error
    if error:
        gr.Warning(error)


# One click of Export downloads the file: its chip (the file's link) is clicked for the user once it is there.
DOWNLOAD_EXPORTED = "() => document.querySelector('#exported-chat a[download]')?.click()"


def _slider(name: str, defaults: GenerationParams) -> gr.Slider:
    allowed = SAMPLING_RANGES[name]
    return gr.Slider(
        allowed.low,
        allowed.high,
        getattr(defaults, name),
        step=allowed.step,
        label=allowed.label or name,
        elem_id=name.replace("_", "-"),
    )


# A message `chat` did not take goes back in the box, before whatever the user typed since.
BACK_IN_THE_BOX = "(not_taken, typed) => not_taken ? (typed ? not_taken + '\\n' + typed : not_taken) : typed"

# What `/chat` and `/regenerate` take after the message: the system prompt, each knob GenerationParams
# declares (in its order), then these; gradio_client shows them by these names.
AFTER_SLIDERS = ("seed", "stop_words", "token_probabilities")


def _endpoint(*first: str):
    """Names the parameters of an event handler taking `(*first, system_prompt, *knobs, state, request)`,
    for Gradio (which passes the gr.Request by its annotation) and for the endpoint's API page."""

    def named(handler):
        names = [*first, "system_prompt", *SAMPLING_RANGES, *AFTER_SLIDERS, "state", "request"]
        handler.__signature__ = inspect.Signature(
            [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names]
        )
        handler.__annotations__ = {"request": gr.Request}
        return handler

    return named


def who_is_asking(request: gr.Request | None) -> str:
    """Whose chat it is, for the limits: the log-in name, else the address it came from."""
    if request is None:
        return "anonymous"
    return request.username or (request.client.host if request.client else "anonymous")


def _apply_knobs(console: Console, state: ChatSession, system_prompt, *values) -> str | None:
    """Take the knobs (the sliders' values, then seed, stop words and token probabilities) into the
    session; a value out of range is refused with what to change."""
    *sliders, seed, stop_words, token_probabilities = values
    if not all(text is None or isinstance(text, str) for text in (system_prompt, stop_words)):
        return "the system prompt and the stop words are text (send strings)"
    try:
        params = GenerationParams.from_form(
            dict(zip(SAMPLING_RANGES, sliders, strict=True)),
            seed=None if seed is None or seed < 0 else int(seed),
            stop=parse_stop_words(repaired_text(stop_words) or ""),
            logprobs=SHOWN_ALTERNATIVES if token_probabilities else 0,
        )
        console.access.limits.check_new_tokens(params.max_new_tokens)
    except (ValueError, OverflowError) as exc:
        return str(exc)
    except TypeError as exc:  # null, a list or an object where the API takes a number
        return f"each knob takes a number ({exc})"
    state.system_prompt, state.params = repaired_text(system_prompt) or "", params
    return None


def _knob_values(state: ChatSession) -> tuple:
    return (state.system_prompt, *_param_values(state.params))


def _param_values(p: GenerationParams) -> tuple:
    """The knobs' values in the order the tab lays them out."""
    return (*p.knob_values().values(), -1 if p.seed is None else p.seed, format_stop_words(p.stop), p.logprobs > 0)
