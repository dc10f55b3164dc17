"""Pure functions from chat sessions to what Gradio components display."""

from __future__ import annotations

from console.chat import ChatSession, Turn
from console.token_view import coloured_tokens


def chatbot_messages(session: ChatSession) -> list[dict]:
    """The Chatbot's value: each reply with its stats (and error, if any) beneath it."""
    return [{"role": turn.role, "content": display_text(turn)} for turn in session.turns]


def display_text(turn: Turn) -> str:
    """A turn as the Chatbot shows it."""
    if turn.role != "assistant" or turn.stats is None:
        return turn.content
    text = coloured_tokens(turn.content, turn.tokens) if turn.tokens else turn.content
    if turn.stats.error:
        text += f"\n\n**Error:** {turn.stats.error}"
    if turn.stats.finish != "generating":
        text += f"\n\n<sub>{turn.stats.summary()}</sub>"
    elif not text:
        text = f"<sub>{turn.stats.waiting or 'waiting for the first token…'}</sub>"
    return text


def parse_stop_words(text: str) -> tuple[str, ...]:
    """One stop word a line; `\\n` written out stands for a newline."""
    return tuple(line.replace("\\n", "\n") for line in text.splitlines() if line)


def format_stop_words(stops: tuple[str, ...]) -> str:
    return "\n".join(stop.replace("\n", "\\n") for stop in stops)
