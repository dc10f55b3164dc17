"""A comparison as one table, its exports (CSV, JSON, Markdown), and outputs side by side."""

from __future__ import annotations

import csv
import dataclasses
import difflib
import html
import io
import json
from dataclasses import dataclass
from typing import Any

from console.token_view import coloured_tokens

from .load import WAVES_PER_POINT, LoadSettings
from .quality import AGREEMENT_TOKENS
from .runner import Comparison, PresetResult


@dataclass(frozen=True)
class Column:
    """One column of the table: where its value is read (a dotted path into a PresetResult),
    how it is printed (decimals, or "%"), and the note that explains an empty cell."""

    heading: str
    path: str
    digits: int | str = 0
    note: str | None = None  # a PresetResult field whose "n/a: why" replaces an empty cell
    group: str = "what ran"  # the page's table it is shown in (GROUPS)


_BASE = (
    Column("preset", "preset"),
    Column("engine", "engine"),
    Column("differs from the first", "differs"),
    Column("load (s)", "load_s", 1),
    Column("GPU used after load (MiB)", "gpu_used_mib", group="memory"),
    Column("weights (GiB)", "weights_gib", 3, group="memory"),
    Column("KV cache reserve (GiB)", "kv_reserve_gib", 2, group="memory"),
    Column("KV capacity (tokens)", "kv_tokens", group="memory"),
    Column("KV tokens per GiB", "kv_tokens_per_gib", group="memory"),
    Column("TTFT (ms)", "ttft_ms", group="speed"),
    Column("decode tok/s, 1 stream", "decode_tps", 1, group="speed"),
    Column("tok/s, {streams} streams", "aggregate_tps", 1, group="speed"),
)
_PERPLEXITY = (Column("perplexity", "perplexity", 3, "perplexity_note", "quality"),)
_AGREEMENT = (
    Column("top-1 agreement", "top1_agreement", "%", "agreement_note", "quality"),
    Column("mean KL (nats)", "mean_kl", 4, "agreement_note", "quality"),
)
_QUESTIONS = (Column("exact match", "exact_match", "%", "exact_match_note", "quality"),)
_SECOND_TURN = (
    Column("TTFT, long system prompt (ms)", "first_turn_ttft_ms", 0, "second_turn_note", "speed"),
    Column("TTFT, same prompt again (ms)", "second_turn_ttft_ms", 0, "second_turn_note", "speed"),
    Column("prompt tokens from the prefix cache", "second_turn_cached", 0, "second_turn_note", "speed"),
)
_LOAD = (
    Column("load: req/s", "load.requests_per_s", 2, "load_note", "load"),
    Column("load: output tok/s", "load.output_tps", 0, "load_note", "load"),
    Column("load: TTFT p50 (ms)", "load.ttft_p50_ms", 0, "load_note", "load"),
    Column("load: TTFT p99 (ms)", "load.ttft_p99_ms", 0, "load_note", "load"),
    Column("load: time per output token p50 (ms)", "load.tpot_p50_ms", 1, "load_note", "load"),
    Column("load: peak running", "load.peak_running", 0, "load_note", "load"),
    Column("load: peak KV use", "load.peak_kv_usage", "%", "load_note", "load"),
    Column("load: requests that waited", "load.waited", 0, "load_note", "load"),
)
_GOODPUT = (Column("load: goodput (req/s)", "load.goodput_rps", 2, "load_note", "load"),)


def columns(comparison: Comparison) -> tuple[Column, ...]:
    """The table's columns: the measures the comparison ran, and no others."""
    s = comparison.settings
    optional = (
        (s.perplexity, _PERPLEXITY),
        (s.agreement, _AGREEMENT),
        (bool(s.questions), _QUESTIONS),
        (s.second_turn, _SECOND_TURN),
    )
    chosen = _BASE + tuple(column for on, group in optional if on for column in group)
    load = (_LOAD + (_GOODPUT if s.load.goodput else ())) if s.load else ()
    return chosen + load


def headings(comparison: Comparison) -> list[str]:
    streams = comparison.settings.concurrency
    return [column.heading.format(streams=streams) for column in columns(comparison)]


def rows(comparison: Comparison) -> list[list[str]]:
    """The table as text cells, one row per preset; a preset that failed says why."""
    chosen = columns(comparison)
    table = []
    for result in comparison.results:
        if result.error:
            table.append([result.preset, result.error] + [""] * (len(chosen) - 2))
        else:
            table.append([_cell(result, column) for column in chosen])
    return table


GROUPS = {  # the page's tables, in order: what each holds
    "what ran": "What ran",
    "memory": "Memory",
    "speed": "Speed, one request and a few at once",
    "quality": "Quality against the first preset",
    "load": "Load test",
}


def tables_html(comparison: Comparison) -> str:
    """The table as the page shows it: one small table per group of columns, each row a preset, so that it
    reads without scrolling sideways; the API and the exports keep the one wide table."""
    chosen, cells = columns(comparison), rows(comparison)
    headings_now = headings(comparison)
    parts = []
    for group, title in GROUPS.items():
        picked = [i for i, column in enumerate(chosen) if column.group == group and i > 0]
        if not picked:
            continue
        head = "".join(f"<th>{html.escape(_unprefixed(headings_now[i]))}</th>" for i in picked)
        body = "".join(
            f"<tr><th>{html.escape(row[0])}</th>{''.join(f'<td>{html.escape(row[i])}</td>' for i in picked)}</tr>"
            for row in cells
        )
        parts.append(
            f'<h4>{html.escape(title)}</h4><table class="compare-results"><thead><tr><th>preset</th>{head}</tr>'
            f"</thead><tbody>{body}</tbody></table>"
        )
    return "".join(parts)


def _unprefixed(heading: str) -> str:
    """A load column's heading without "load: ": its table says so."""
    return heading.removeprefix("load: ")


def _cell(result: PresetResult, column: Column) -> str:
    value: Any = result
    for name in column.path.split("."):
        value = getattr(value, name, None)
    if value is None or value == "":
        note = getattr(result, column.note, "") if column.note else ""
        return note if note.startswith("n/a") else "n/a"
    if column.digits == "%":
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:,.{column.digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def notes(comparison: Comparison) -> list[str]:
    """What a reader must know to read the table right (random weights, what a load test did)."""
    lines = []
    random = [r.preset for r in comparison.results if r.random_weights]
    if random:
        lines.append(
            f"{', '.join(random)}: a model with **random weights**. Its speed and memory figures are real; "
            "its answers are noise, so no quality figure is shown for it."
        )
    load = comparison.settings.load
    if load:
        lines.append(_load_note(load))
    if load and load.goodput:
        lines.append(
            f"Goodput: the requests per second whose first token came within {load.goodput.ttft_ms:,.0f} ms and "
            f"whose reader then got at least {load.goodput.user_tps:,.1f} tokens/s (output tokens after the first "
            "over the time from the first to the last)."
        )
    if any(r.sweep for r in comparison.results):
        lines.append(sweep_table(comparison))
    failed = [
        f"{r.preset}: {r.load_note}" for r in comparison.results if r.load_note and not r.load_note.startswith("n/a")
    ]
    lines += [f"Load test, {line}" for line in failed]
    measured = [r for r in comparison.results if not r.error and not r.random_weights]
    if comparison.settings.token_probabilities:
        lines.append(
            "Outputs: each answer is shown a second time shaded by how likely the preset found each token "
            "(deeper red: less likely; hover a token for its probability and the likeliest alternatives). The "
            "prompts' TTFT and decode figures include computing these probabilities."
        )
    if comparison.settings.agreement and measured:
        lines.append(
            f"Agreement: each preset's next-token distributions on the first {AGREEMENT_TOKENS} tokens of a fixed "
            "text against the first preset's (LMDeploy's get_logits; transformers' logits on the CPU): the share "
            "of positions with the same most likely token, and the mean KL divergence of this preset's "
            "next-token probabilities from the first's (in nats: 0 means the same probabilities at every "
            "position; the larger, the further this preset's guesses moved, even where its top token stayed)."
        )
    if comparison.settings.questions and measured:
        lines.append(
            f"Exact match: {comparison.settings.questions_source}, greedy, the reply's first line against the "
            "answer after SQuAD normalization (case, punctuation and articles ignored)."
        )
    return lines


def _load_note(load: LoadSettings) -> str:
    each = (
        f"{load.prompt_tokens:,} prompt tokens (chat template included) and exactly {load.output_tokens:,} output "
        "tokens each (EOS ignored), greedy"
    )
    if load.sweep:
        runs = (
            f"Load test, a sweep: at {', '.join(map(str, load.sweep))} requests in flight in turn, each point "
            f"{WAVES_PER_POINT} times as many requests as it holds in flight (at most {load.requests}), of {each}. "
            f"The table's load columns are its last point ({load.sweep[-1]} in flight)."
        )
    else:
        flight = f"{load.concurrency} at a time" if load.concurrency else "all sent at once"
        runs = f"Load test: {load.requests} requests of {each}, {flight}."
    return (
        f"{runs} Time per output token is after the first, the median request's. Peak running and KV use are "
        "LMDeploy's scheduler read every 0.2 s; a request 'waited' if another request finished between its "
        "sending and its first token."
    )


SWEEP_HEADINGS = (
    "preset",
    "in flight",
    "output tok/s in all",
    "tok/s per user (p50)",
    "req/s",
    "TTFT p50 (ms)",
    "TTFT p99 (ms)",
    "goodput (req/s)",
    "failed",
)


def sweep_rows(comparison: Comparison) -> list[list[str]]:
    """One row per preset and point of the sweep."""
    return [
        [
            result.preset,
            str(point.in_flight),
            _number(point.output_tps, 0),
            _number(point.user_tps_p50, 1),
            _number(point.requests_per_s, 2),
            _number(point.ttft_p50_ms, 0),
            _number(point.ttft_p99_ms, 0),
            _number(point.goodput_rps, 2),
            str(point.failed),
        ]
        for result in comparison.results
        for point in result.sweep
    ]


def sweep_table(comparison: Comparison) -> str:
    head = "| " + " | ".join(SWEEP_HEADINGS) + " |\n|" + "---|" * len(SWEEP_HEADINGS)
    return (
        "**Concurrency sweep**\n\n" + head + "".join("\n| " + " | ".join(row) + " |" for row in sweep_rows(comparison))
    )


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def to_csv(comparison: Comparison) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headings(comparison))
    writer.writerows(rows(comparison))
    return out.getvalue()


def to_json(comparison: Comparison) -> str:
    """Every figure unrounded, the outputs, the settings, the machine and the presets used."""
    data = {
        "machine": comparison.machine,
        "boot_id": comparison.boot_id,
        "started": comparison.started,
        "settings": {
            "presets": list(comparison.settings.presets),
            "prompts": [case.name for case in comparison.settings.prompts],
            "max_new_tokens": comparison.settings.max_new_tokens,
            "concurrency": comparison.settings.concurrency,
            "sampling": "greedy (temperature 0, top_k 1, seed 0)",
            "agreement": comparison.settings.agreement,
            "questions": comparison.settings.questions_source or None,
            "load": dataclasses.asdict(comparison.settings.load) if comparison.settings.load else None,
        },
        "notes": notes(comparison),
        "presets_used": comparison.preset_yaml,
        "results": [
            dataclasses.asdict(result) | {"kv_tokens_per_gib": result.kv_tokens_per_gib}
            for result in comparison.results
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False)


def to_markdown(comparison: Comparison) -> str:
    s = comparison.settings
    lines = [
        f"Compared {comparison.started} on: {comparison.machine}",
        "",
        f"Prompts: {', '.join(case.name for case in s.prompts)}; greedy decoding, up to {s.max_new_tokens} new "
        f"tokens; {s.concurrency} requests at once for the aggregate; TTFT and decode tok/s are medians over "
        "the prompts (tool calls left out). Perplexity: LMDeploy's `get_ppl` (the cpu backend's equivalent) "
        "on a fixed offline text.",
        "",
        *[f"{line}\n" for line in notes(comparison)],
        "| " + " | ".join(headings(comparison)) + " |",
        "|" + "---|" * len(columns(comparison)),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(comparison)]
    lines += ["", "Presets used:", ""]
    for name, text in comparison.preset_yaml.items():
        lines += [f"- `{name}`:", "", "```yaml", text.rstrip(), "```", ""]
    return "\n".join(lines)


EXPORTS = {"csv": to_csv, "json": to_json, "md": to_markdown}  # file suffix -> writer


def outputs_html(comparison: Comparison) -> str:
    """Each prompt's answers side by side; words that differ from the first preset's are marked."""
    measured = [r for r in comparison.results if not r.error]
    if not measured:
        return "<p>No outputs: no preset could be measured.</p>"
    head = "".join(f"<th>{html.escape(r.preset)}</th>" for r in measured)
    body = []
    for index, case in enumerate(comparison.settings.prompts):
        reference = _output(measured[0], index)
        cells = [f"<td>{_marked(reference, _output(r, index))}{_probabilities(r, index)}</td>" for r in measured]
        body.append(f"<tr><th>{html.escape(case.name)}</th>{''.join(cells)}</tr>")
    return (
        '<table class="compare-outputs"><thead><tr><th>prompt</th>'
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _probabilities(result: PresetResult, index: int) -> str:
    """The answer again, shaded by how likely the preset found each token (hover: the alternatives)."""
    output = result.outputs[index]
    if not output.token_probabilities:
        return ""
    return f'<div class="token-probabilities">{coloured_tokens(output.text, output.token_probabilities)}</div>'


def _output(result: PresetResult, index: int) -> str:
    output = result.outputs[index]
    return f"[{output.error}] {output.text}".strip() if output.error else output.text


def _marked(reference: str, text: str) -> str:
    """`text` as HTML, with <mark> around the words that are not in `reference` at that place."""
    ref_words, words = reference.split(" "), text.split(" ")
    pieces = []
    for op, _, _, j1, j2 in difflib.SequenceMatcher(a=ref_words, b=words, autojunk=False).get_opcodes():
        chunk = html.escape(" ".join(words[j1:j2]))
        if chunk:
            pieces.append(chunk if op == "equal" else f"<mark>{chunk}</mark>")
    return " ".join(pieces).replace("\n", "<br>")
