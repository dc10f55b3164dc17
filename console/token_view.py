"""A reply as HTML shaded by how likely the model found each token, for the Chat tab (Markdown) and
Compare's outputs (HTML) alike."""

from __future__ import annotations

import html
import math

from backends import TokenChoice

SHOWN_ALTERNATIVES = 5  # likeliest other tokens shown on hover (the logprobs asked for)

# characters Markdown would read as markup inside a coloured token: written as HTML entities
_MARKDOWN_ENTITIES = str.maketrans({c: f"&#{ord(c)};" for c in "\\`*_[]#|~$<>&\"'"})


def coloured_tokens(text: str, tokens: tuple[TokenChoice, ...]) -> str:
    """The text as one span a token, shaded by how unlikely the model found it, its probability and
    likeliest alternatives on hover. Tokens are followed while they spell the text (a stop word may
    cut it short); the rest is shown plain."""
    spans, spelled = [], ""
    for token in tokens:
        if not token.text or not text.startswith(spelled + token.text):
            break
        spelled += token.text
        spans.append(_token_span(token))
    return "".join(spans) + literal(text[len(spelled) :])


def _token_span(token: TokenChoice) -> str:
    probability = math.exp(token.logprob) if math.isfinite(token.logprob) else 0.0
    others = ", ".join(f"{alt!r} {math.exp(lp):.0%}" for alt, lp in token.alternatives)
    hover = f"{probability:.1%}" + (f"; also: {others}" if others else "")
    shade = f"rgba(239, 68, 68, {0.65 * (1 - probability):.2f})"
    return f'<span class="token" style="background-color: {shade}" title="{html.escape(hover)}">{literal(token.text)}</span>'


def literal(text: str) -> str:
    """Text shown as written, not read as Markdown or HTML; newlines kept."""
    return text.translate(_MARKDOWN_ENTITIES).replace("\n", "<br>")
