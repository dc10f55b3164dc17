"""A comparison as one table, its exports (CSV, JSON, Markdown), and outputs side by side."""

from __future__ import annotations

import csv
import dataclasses
import difflib
import html
import io
import json

from .runner import Comparison, PresetResult

# (heading, how to read it from a result, decimals); None prints as "n/a"
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("preset", "preset", 0),
    ("engine", "engine", 0),
    ("load (s)", "load_s", 1),
    ("GPU used after load (MiB)", "gpu_used_mib", 0),
    ("weights (GiB)", "weights_gib", 3),
    ("KV cache reserve (GiB)", "kv_reserve_gib", 2),
    ("KV capacity (tokens)", "kv_tokens", 0),
    ("TTFT (ms)", "ttft_ms", 0),
    ("decode tok/s, 1 stream", "decode_tps", 1),
    ("tok/s, N streams", "aggregate_tps", 1),
    ("perplexity", "perplexity", 3),
)


def headings(comparison: Comparison) -> list[str]:
    n = str(comparison.settings.concurrency)
    return [heading.replace("N streams", f"{n} streams") for heading, _, _ in COLUMNS]


def rows(comparison: Comparison) -> list[list[str]]:
    """The table as text cells, one row per preset; a preset that failed says why."""
    table = []
    for result in comparison.results:
        if result.error:
            table.append([result.preset, result.error] + [""] * (len(COLUMNS) - 2))
        else:
            table.append([_cell(getattr(result, attr), digits) for _, attr, digits in COLUMNS])
    return table


def _cell(value, digits: int) -> str:
    if value is None or value == "":
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


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
        "started": comparison.started,
        "settings": {
            "presets": list(comparison.settings.presets),
            "prompts": [case.name for case in comparison.settings.prompts],
            "max_new_tokens": comparison.settings.max_new_tokens,
            "concurrency": comparison.settings.concurrency,
            "sampling": "greedy (temperature 0, top_k 1, seed 0)",
        },
        "presets_used": comparison.preset_yaml,
        "results": [dataclasses.asdict(result) for result in comparison.results],
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
        "| " + " | ".join(headings(comparison)) + " |",
        "|" + "---|" * len(COLUMNS),
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
        cells = [f"<td>{_marked(reference, _output(r, index))}</td>" for r in measured]
        body.append(f"<tr><th>{html.escape(case.name)}</th>{''.join(cells)}</tr>")
    return (
        '<table class="compare-outputs"><thead><tr><th>prompt</th>'
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


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
