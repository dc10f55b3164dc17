"""How a refusal reaches the user: a notice on the page and one line in the console's log.
Tracebacks are for faults; a user's mistake (one preset picked, a job already running) is not one."""

from __future__ import annotations

import logging

import gradio as gr

logger = logging.getLogger("lmdeploy_console.ui")


def refused(message: str) -> gr.Error:
    """The gr.Error to raise for a request the console will not run, logged in one line."""
    logger.warning("refused: %s", message)
    return gr.Error(message, print_exception=False)
