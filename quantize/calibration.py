"""Calibration text: the user's own (.txt or .jsonl) or the shipped offline default.

LMDeploy's `auto_awq` loads its calibration sets from a hub; many GPU servers cannot reach
one, so the console never downloads: it feeds `auto_awq` windows of local text instead.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from backends import Refusal

# Python's reference manual (pydoc_data, PSF licence): ~200 KB of English, shipped, fixed.
DEFAULT_TEXT = Path(__file__).resolve().parent / "data" / "calibration.txt"
MAX_BYTES = 5 * 2**20
MIN_CHARS = 2_000


class CalibrationError(Refusal, ValueError):
    """The calibration file cannot be used; the message says why and what to give instead."""


def load_text(path: Path | None) -> str:
    """The calibration text from `path` (.txt, or .jsonl of {"text": ...} lines), or the default."""
    if path is None:
        return DEFAULT_TEXT.read_text(encoding="utf-8")
    if path.stat().st_size > MAX_BYTES:
        raise CalibrationError(f"{path.name} is over {MAX_BYTES // 2**20} MB; a few hundred KB of text is plenty")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CalibrationError(f"{path.name} is not UTF-8 text") from exc
    text = _jsonl_text(raw, path.name) if path.suffix == ".jsonl" else raw
    if len(text.strip()) < MIN_CHARS:
        raise CalibrationError(
            f"{path.name} has {len(text.strip()):,} characters of text; give at least {MIN_CHARS:,} "
            "(or leave it empty for the built-in text)"
        )
    return text


def _jsonl_text(raw: str, name: str) -> str:
    texts = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CalibrationError(f"{name} line {number}: not JSON ({exc.msg})") from exc
        text = record.get("text") if isinstance(record, dict) else record
        if not isinstance(text, str):
            raise CalibrationError(f'{name} line {number}: expected {{"text": "..."}} or a JSON string')
        texts.append(text)
    return "\n\n".join(texts)


def windows(token_ids: list[int], samples: int, seqlen: int, seed: int = 0) -> list[list[int]]:
    """`samples` windows of `seqlen` tokens at seeded random places, as LMDeploy samples
    wikitext2; a text shorter than `seqlen` gives windows of its whole length."""
    seqlen = min(seqlen, len(token_ids))
    if seqlen < 2:
        raise CalibrationError("the calibration text is too short to tokenize into windows")
    rng = random.Random(seed)
    starts = [rng.randint(0, len(token_ids) - seqlen) for _ in range(samples)]
    return [token_ids[start : start + seqlen] for start in starts]
