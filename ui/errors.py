"""How a refusal reaches the user: a notice on the page and one line in the console's log.
Tracebacks are for faults; a user's mistake (one preset picked, a job already running) is not one."""

from __future__ import annotations

import logging

import gradio as gr

logger = logging.getLogger("lmdeploy_console.ui")


# For an event that raises `refused`: Gradio paints a red "Error" label over every output of an event that
# raised, on top of what they showed; hidden, the page's answer is the error's toast alone.
REFUSABLE_PROGRESS = "hidden"


def refused(message: str) -> gr.Error:
    """The gr.Error to raise for a request the console will not run, where the refusal is the event's
    whole answer (an API call gets it as its error; its event is to have show_progress=REFUSABLE_PROGRESS);
    logged in one line."""
    logger.warning("refused: %s", message)
    return gr.Error(message, print_exception=False)


def notice(outcome: str, refusal: Exception) -> str:
    """A refusal where the action has a status line of its own: a toast now, and the line saying what
    did not happen and why (an API call gets the line); logged in one line."""
    logger.warning("refused: %s", refusal)
    gr.Warning(str(refusal))
    return f"**{outcome}:** {refusal}"


def whole_number(value, what: str) -> int:
    """A number from the page or the API (where any JSON arrives: null, text, NaN) as an integer;
    the ValueError names the field."""
    try:
        if float(value) == int(value):
            return int(value)
    except (TypeError, ValueError, OverflowError):
        pass
    raise ValueError(f"{what} must be a whole number ({value!r} given)")
