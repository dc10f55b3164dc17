"""The Side by side tab: two presets answer one message at once, and the room votes blind.

API: `/side_by_side` (both replies, streaming), `/vote`, `/load_side_b`, `/unload_side_b`, `/side_by_side_votes`.
"""

from __future__ import annotations

import time

import gradio as gr

from backends import GenerationParams, Refusal
from console.chat import ChatSession, message_problem, repaired_text
from console.core import Console
from console.side_by_side import Round, parting_point, side_a_name
from console.token_view import SHOWN_ALTERNATIVES, coloured_tokens, literal
from console.votes import PairTally

from .admin_only import AdminOnly
from .chat import who_is_asking
from .downloads import download_folder
from .errors import notice, refused
from .preset_lists import preset_dropdown
from .tab_parts import Refresh, TabParts
from .unread import UnreadPaints

SHARED_MACHINE = (
    "Both sides run at once on this machine (on one GPU unless side B's load says it has one of its own, or "
    "on the same CPU cores), so their speeds are a live view of the two sharing it, not Compare's clean figures."
)
CHOICES = {"left": "Left is better", "tie": "Tie", "right": "Right is better"}


class RoundHolder:
    """This page's round, changed in place (a State output would be sent with every paint)."""

    round: Round | None = None


def build_tab(console: Console, admin: AdminOnly) -> TabParts:
    """Lay out the tab; its parts: its side-A switch event, its tally timer, and the sides as it opens."""
    pair = console.side_b
    names = console.catalog.names()
    gr.Markdown(
        "Two presets answer the same message at once. **Side A** is the running preset; **side B** is "
        f"loaded beside it. {SHARED_MACHINE} With **Blind** on, the sides are shown as Left and Right "
        "in a random order and named once you vote."
    )
    with gr.Row():
        with gr.Column():
            pick_a = preset_dropdown(names, value=console.state().preset, label="Side A: the running preset")
            switch_a = gr.Button("Switch side A", size="sm", elem_id="switch-side-a")
        with gr.Column():
            pick_b = preset_dropdown(names, value=None, label="Side B", elem_id="pick-side-b")
            with gr.Row():
                load_b = gr.Button("Load side B", size="sm", variant="primary", elem_id="load-side-b")
                unload_b = gr.Button("Unload side B", size="sm", elem_id="unload-side-b")
    admin.controls(switch_a, load_b, unload_b)
    admin.reason()
    sides = gr.Markdown(_sides_text(console), elem_id="sides")
    with gr.Row():
        message = gr.Textbox(placeholder="One message for both sides", show_label=False, scale=5, elem_id="sbs-input")
        send = gr.Button("Send to both", variant="primary", scale=1, elem_id="sbs-send")
        stop = gr.Button("Stop", variant="stop", scale=0, elem_id="sbs-stop")
    with gr.Row():
        blind = gr.Checkbox(True, label="Blind: hide which side is which until you vote", elem_id="sbs-blind")
        greedy = gr.Checkbox(True, label="Greedy on both sides (marks where the replies part)")
        shaded = gr.Checkbox(False, label="Shade by token probability")
        max_new_tokens = gr.Slider(16, 1024, 256, step=16, label="max new tokens")
    with gr.Row():
        with gr.Column():
            left_title = gr.Markdown("### Left", elem_id="sbs-left-title")
            left = gr.Markdown(elem_id="sbs-left")
            left_stats = gr.Markdown(elem_id="sbs-left-stats")
        with gr.Column():
            right_title = gr.Markdown("### Right", elem_id="sbs-right-title")
            right = gr.Markdown(elem_id="sbs-right")
            right_stats = gr.Markdown(elem_id="sbs-right-stats")
    parted = gr.Markdown(elem_id="sbs-parted")
    reply_json = gr.JSON(visible=False)  # the round for API clients: both replies, their stats, the names
    with gr.Row():
        vote_buttons = {
            choice: gr.Button(label, size="sm", elem_id=f"vote-{choice}") for choice, label in CHOICES.items()
        }
    revealed = gr.Markdown(elem_id="sbs-revealed")
    tally = gr.Markdown(_tally_text(pair.votes.tallies()), elem_id="sbs-tally")
    with gr.Row():
        export_csv = gr.Button("Export votes (CSV)", size="sm")
        export_json = gr.Button("Export votes (JSON)", size="sm")
        exported = gr.File(label="Votes", visible=False, interactive=False)
    holder = gr.State(RoundHolder())  # copied for each page, as Gradio does with a State's value
    tally_timer = gr.Timer(5, active=False)

    async def load_side_b(name, request: gr.Request):
        """Load a preset as side B beside the running engine (admins)."""
        yield f"Loading **{name}** as side B beside the running engine...", gr.skip()
        try:
            load = await pair.load(name or "", user=request.username if request else None)
        except Refusal as exc:
            yield _sides_text(console), notice("Side B not loaded", exc)
            return
        yield _sides_text(console), f"**{load.preset}** loaded as side B in {load.load_seconds:.1f} s."

    async def unload_side_b(request: gr.Request):
        """Close side B and give back its memory (admins)."""
        try:
            await pair.unload(user=request.username if request else None)
        except Refusal as exc:
            return _sides_text(console), notice("Side B not unloaded", exc)
        return _sides_text(console), "Side B unloaded."

    async def switch_side_a(name, request: gr.Request):
        try:
            report = await console.switch_preset(name or "", user=request.username if request else None)
        except Refusal as exc:
            return _sides_text(console), notice("Side A not switched", exc)
        return _sides_text(console), f"Side A is now **{report.preset}** (loaded in {report.load_seconds:.1f} s)."

    async def side_by_side(message, blind, greedy, max_new_tokens, token_probabilities, holder, request: gr.Request):
        """Send one message to both sides; both replies stream at once."""
        message = repaired_text(message)
        if holder.round is not None and not holder.round.finished():
            gr.Warning("Both sides are still answering: wait for them, or press Stop.")
            yield *(gr.skip(),) * 4, "**Not sent:** both sides are still answering", *(gr.skip(),) * 3
            return
        try:
            if problem := message_problem(message):
                raise ValueError(problem)
            params = _round_params(console, greedy, max_new_tokens, token_probabilities)
            round_ = pair.start_round(message, "", params, bool(blind))
            slot = console.chat_slots.take(who_is_asking(request))
        except (Refusal, ValueError, TypeError) as exc:  # said under the replies, for the page and the API alike
            yield *(gr.skip(),) * 4, notice("Not sent", exc), *(gr.skip(),) * 3
            return
        holder.round = round_  # only a round that streams: one never sent would hold the page's next
        unread = UnreadPaints.of_request(request)
        with slot:
            async for painted in pair.stream(round_):
                if unread.nobody_reads():  # its client is gone: both sides stop, as Stop would
                    stop_round(holder)
                yield _paint(painted, shaded=bool(token_probabilities))

    def stop_round(holder):
        """Stop both replies; each keeps its text."""
        if holder.round is not None:
            holder.round.a.stop_reply()
            holder.round.b.stop_reply()

    def vote(choice: str, holder):
        """Vote on this page's last blind round: left, right or tie; names the sides."""
        if choice not in CHOICES:
            raise refused(f"vote left, right or tie, not {choice!r}")
        round_ = holder.round
        try:
            if round_ is None:
                raise ValueError("send a message first: a vote is on the two replies to it")
            winner = pair.vote(round_, choice)
        except ValueError as exc:  # said where the vote's outcome goes, for the page and the API alike
            return notice("Not counted", exc), gr.skip(), gr.skip(), gr.skip()
        left_name, right_name = round_.side_names()
        verdict = "a tie" if winner == "tie" else f"**{winner}**"
        return (
            f"Left was **{left_name}**, right was **{right_name}**: your vote for {verdict} is counted.",
            _tally_text(pair.votes.tallies()),
            f"### Left: {left_name}",
            f"### Right: {right_name}",
        )

    def export(kind: str):
        path = download_folder() / time.strftime(f"votes-%Y%m%d-%H%M%S.{kind}")
        path.write_text(pair.votes.as_csv() if kind == "csv" else pair.votes.as_json(), encoding="utf-8")
        return gr.File(value=str(path), visible=True)

    def votes_json() -> list[dict]:
        """Every pair's tally: votes, wins, ties, the first preset's share and its 95% interval."""
        return [_tally_row(t) for t in pair.votes.tallies()]

    gr.on(
        [message.submit, send.click],
        side_by_side,
        [message, blind, greedy, max_new_tokens, shaded, holder],
        [left, right, left_stats, right_stats, parted, reply_json, left_title, right_title],
        api_name="side_by_side",
        concurrency_limit=None,
        trigger_mode="multiple",
    )
    gr.on([message.submit, send.click], lambda: "", outputs=revealed, api_visibility="private")
    stop.click(stop_round, holder, None, api_name="stop_side_by_side", concurrency_limit=None)
    for choice, button in vote_buttons.items():
        button.click(
            lambda holder, choice=choice: vote(choice, holder),
            holder,
            [revealed, tally, left_title, right_title],
            api_visibility="private",
        )
    # the API's vote: the page's buttons each send their own choice, an API client names one
    api_choice, api_vote = gr.Radio(list(CHOICES), visible=False), gr.Button(visible=False)
    api_vote.click(vote, [api_choice, holder], [revealed, tally, left_title, right_title], api_name="vote")
    gr.api(votes_json, api_name="side_by_side_votes")
    load_b.click(load_side_b, pick_b, [sides, revealed], api_name="load_side_b", concurrency_id="switch")
    unload_b.click(unload_side_b, None, [sides, revealed], api_name="unload_side_b", concurrency_id="switch")
    switched = switch_a.click(
        switch_side_a, pick_a, [sides, revealed], api_visibility="private", concurrency_id="switch"
    )
    export_csv.click(lambda: export("csv"), outputs=exported, api_visibility="private")
    export_json.click(lambda: export("json"), outputs=exported, api_visibility="private")

    def refreshed():
        """The sides, the tally, and the preset lists as the catalog has them now."""
        names = console.catalog.names()
        return (
            _sides_text(console),
            _tally_text(pair.votes.tallies()),
            gr.Dropdown(choices=names, value=console.state().preset),
            gr.Dropdown(choices=names),
        )

    def ticked():
        return _sides_text(console), _tally_text(pair.votes.tallies())

    tally_timer.tick(ticked, outputs=[sides, tally], api_visibility="private", show_progress="hidden")
    return TabParts(switches=[switched], timer=tally_timer, on_open=Refresh(refreshed, [sides, tally, pick_a, pick_b]))


def _round_params(console: Console, greedy, max_new_tokens, token_probabilities) -> GenerationParams:
    """The running preset's settings, greedy where asked (so that where the replies part is the
    presets' doing, not sampling's), with this round's length and probabilities."""
    base = console.state().default_params
    knobs = base.knob_values() | {"max_new_tokens": int(max_new_tokens)}
    if greedy:
        knobs["temperature"] = 0.0
    params = GenerationParams.from_form(knobs, logprobs=SHOWN_ALTERNATIVES if token_probabilities else 0)
    console.access.limits.check_new_tokens(params.max_new_tokens)
    return params


def _paint(round_: Round, shaded: bool) -> tuple:
    at = parting_point(round_.a, round_.b) if round_.finished() and round_.a.params.greedy else None
    by_tokens = bool(round_.a.turns[-1].tokens and round_.b.turns[-1].tokens)
    names = round_.side_names()
    hidden = round_.blind and round_.voted is None
    texts = [_reply_markdown(session, at, by_tokens, shaded) for session in (round_.left, round_.right)]
    stats = [_stats_line(session) for session in (round_.left, round_.right)]
    return (
        *texts,
        *stats,
        _parted_text(round_, at, by_tokens),
        _round_json(round_, at, hidden),
        "### Left" if hidden else f"### Left: {names[0]}",
        "### Right" if hidden else f"### Right: {names[1]}",
    )


def _reply_markdown(session: ChatSession, parted_at: int | None, by_tokens: bool, shaded: bool) -> str:
    """The reply, shaded by token probability where asked, marked from where the two replies part."""
    reply = session.turns[-1]
    if by_tokens:
        cut = len(reply.tokens) if parted_at is None else parted_at
        before, after = reply.tokens[:cut], reply.tokens[cut:]
        head_text = "".join(t.text for t in before)
        head = coloured_tokens(head_text, before) if shaded else literal(head_text)
        tail_text = reply.content[len(head_text) :]
        tail = coloured_tokens(tail_text, after) if shaded else literal(tail_text)
    else:
        cut = len(reply.content) if parted_at is None else parted_at
        head, tail = literal(reply.content[:cut]), literal(reply.content[cut:])
    if reply.stats and reply.stats.error:
        tail += f"<br>**Error:** {literal(reply.stats.error)}"
    return head + (f"<mark>{tail}</mark>" if parted_at is not None and tail else tail)


def _stats_line(session: ChatSession) -> str:
    stats = session.turns[-1].stats
    if stats is None:
        return ""
    return f"_{stats.waiting or stats.summary()}_"


def _parted_text(round_: Round, at: int | None, by_tokens: bool) -> str:
    if not round_.finished():
        return ""
    if not round_.a.params.greedy:
        return "Sampled replies: they differ by chance as well as by preset."
    if at is None:
        return "Greedy, and the two replies are the same."
    unit = "token" if by_tokens else "character"
    return f"Greedy: the replies part at {unit} {at + 1} (marked)."


def _round_json(round_: Round, at: int | None, hidden: bool) -> dict:
    def side(session: ChatSession) -> dict:
        reply = session.turns[-1]
        return {
            "text": reply.content,
            "stats": reply.stats.summary() if reply.stats else "",
            "error": reply.stats.error,
        }

    names = round_.side_names()
    return {
        "left": side(round_.left) | {"preset": None if hidden else names[0]},
        "right": side(round_.right) | {"preset": None if hidden else names[1]},
        "blind": round_.blind,
        "finished": round_.finished(),
        "parted_at": at,
    }


def _sides_text(console: Console) -> str:
    state, pair = console.state(), console.side_b
    a = f"**A:** {side_a_name(console)} ({state.info.engine}){_memory(console, console.backend)}"
    if pair.loading:
        b = f"**B:** {pair.loading.describe()}"
    elif pair.loaded and pair.backend:
        info = pair.backend.info()
        notes = "; ".join(pair.loaded.notes)
        b = (
            f"**B:** {pair.loaded.preset} ({info.engine}, loaded in {pair.loaded.load_seconds:.1f} s)"
            f"{_memory(console, pair.backend)}" + (f". {notes}" if notes else "")
        )
    else:
        b = "**B:** none loaded: pick a preset and Load side B"
    return f"{a}  \n{b}"


def _memory(console: Console, backend) -> str:
    """What a side holds: its worker's GPU memory where it has one, else its weights."""
    sample = console.sampler.latest()
    if backend.pid and sample.gpus:
        used = sum(p.used_mib for gpu in sample.gpus for p in gpu.processes if p.pid == backend.pid)
        if used:
            return f", {used / 1024:.1f} GiB of GPU memory"
    weights = backend.info().details.get("weights_bytes")
    return f", weights {weights / 2**20:,.0f} MiB" if weights else ""


def _tally_row(tally: PairTally) -> dict:
    low, high = tally.interval()
    return {
        "first": tally.first,
        "second": tally.second,
        "votes": tally.votes,
        "first_wins": tally.first_wins,
        "second_wins": tally.second_wins,
        "ties": tally.ties,
        "first_win_rate": round(tally.first_win_rate, 4),
        "interval_95": [round(low, 4), round(high, 4)],
    }


def _tally_text(tallies: list[PairTally]) -> str:
    if not tallies:
        return "_No votes yet: send a message with Blind on, then vote._"
    rows = [
        "| pair | votes | wins | ties | first's share (ties half) | 95% interval |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in tallies:
        low, high = t.interval()
        rows.append(
            f"| {t.first} vs {t.second} | {t.votes} | {t.first_wins} : {t.second_wins} | {t.ties} | "
            f"{t.first_win_rate:.0%} | {low:.0%} - {high:.0%} |"
        )
    return "\n".join(rows)
