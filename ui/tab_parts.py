"""What a tab hands `ui.build` to wire into the page: every tab's `build_tab` returns one `TabParts`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import gradio as gr

if TYPE_CHECKING:
    from .preset_knobs import PresetKnobs


@dataclass(frozen=True)
class Refresh:
    """A handler and the components it writes (and reads)."""

    fn: Callable
    outputs: list
    inputs: list = field(default_factory=list)


@dataclass(frozen=True)
class TabParts:
    """What the page wires around a tab; a tab fills in what applies to it."""

    # its events after which the running engine may be another: every page part that shows it follows
    switches: list = field(default_factory=list)
    # its events after which the catalog may hold new presets (a quantization's)
    catalog_changes: list = field(default_factory=list)
    # its lists of presets, read again where presets may have changed (a page opens, the tab opens)
    preset_lists: list[gr.Radio | gr.CheckboxGroup] = field(default_factory=list)
    # what it shows of the running engine: painted as a page opens and again after every switch
    engine_view: Refresh | None = None
    # what it shows when it is opened (a job running now, the loaded sides)
    on_open: Refresh | None = None
    # its refresh timer, which ticks only while the tab is open
    timer: gr.Timer | None = None
    # the Chat knobs, which follow the running preset's generation settings on every page
    preset_knobs: PresetKnobs | None = None
