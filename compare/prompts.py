"""The prompt sets a comparison runs: built-in ones, and the user's own (one per line)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tools.scenarios import SCENARIOS, tool_choice_value

DATA_DIR = Path(__file__).resolve().parent / "data"
# Text from Python's reference manual (pydoc_data, PSF licence): offline and fixed; the perplexity
# text is 1,500 SmolLM2 tokens, so it fits a 2048-token session whole.
PERPLEXITY_TEXT = DATA_DIR / "perplexity.txt"
_LONG_DOCUMENT = DATA_DIR / "long_context.txt"
MAX_USER_PROMPTS = 8
MAX_PROMPT_CHARS = 20_000


@dataclass(frozen=True)
class PromptCase:
    """One request every preset answers: messages, and tools for the tool-call case."""

    name: str
    messages: list[dict]
    tools: list[dict] | None = None
    tool_choice: str | dict = "auto"
    note: str = field(default="", compare=False)


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _tool_case() -> PromptCase:
    scenario = SCENARIOS["add and multiply: (3 + 5) x 2"]
    return PromptCase(
        "tool call", _user(scenario.prompt), scenario.tools, tool_choice_value(scenario.tool_choice), "first call only"
    )


def builtin_prompts() -> dict[str, PromptCase]:
    document = _LONG_DOCUMENT.read_text(encoding="utf-8")
    return {
        "short story": PromptCase(
            "short story",
            _user("Write a four-sentence story about a lighthouse keeper who finds a message in a bottle."),
        ),
        "math": PromptCase(
            "math", _user("A train covers 120 km in 1.5 hours. What is its average speed in km/h? Show the steps.")
        ),
        "long context": PromptCase(
            "long context",
            _user(f"{document}\n\nUsing only the text above, explain in three sentences how Python compares objects."),
            note=f"{len(document):,} characters of Python's reference manual, then a question",
        ),
        "tool call": _tool_case(),
    }


def second_turn_cases() -> tuple[PromptCase, PromptCase]:
    """Two questions under one long system prompt (the manual's text): the second request starts
    with the same tokens as the first, which is what a prefix cache can reuse."""
    system = {
        "role": "system",
        "content": "Answer from this text only.\n\n" + _LONG_DOCUMENT.read_text(encoding="utf-8"),
    }
    return (
        PromptCase("turn 1", [system, {"role": "user", "content": "How does Python compare two objects?"}]),
        PromptCase("turn 2", [system, {"role": "user", "content": "What does `is` test?"}]),
    )


def user_prompts(text: str) -> list[PromptCase]:
    """The user's prompts, one per non-empty line; ValueError says what is wrong."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_USER_PROMPTS:
        raise ValueError(f"{len(lines)} prompts: a comparison takes at most {MAX_USER_PROMPTS}, one per line")
    too_long = [i + 1 for i, line in enumerate(lines) if len(line) > MAX_PROMPT_CHARS]
    if too_long:
        raise ValueError(f"prompt {too_long[0]} is over {MAX_PROMPT_CHARS:,} characters; shorten it")
    return [PromptCase(f"your prompt {i + 1}", _user(line)) for i, line in enumerate(lines)]
