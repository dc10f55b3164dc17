"""Download folders older than an hour are removed as new ones are made; newer ones stay."""

import os
import time

from ui.downloads import KEPT_S, download_folder


def test_old_download_folders_are_pruned_and_recent_ones_kept(tmp_path):
    old, recent = download_folder(tmp_path), download_folder(tmp_path)
    (old / "chat.json").write_text("{}")
    hours_ago = time.time() - KEPT_S - 60
    os.utime(old, (hours_ago, hours_ago))
    newest = download_folder(tmp_path)
    assert sorted(tmp_path.iterdir()) == sorted([recent, newest])


def test_the_console_s_page_has_gradio_delete_its_cached_uploads_after_an_hour():
    from console.core import Console
    from console.engine_state import NoEngine
    from ui import build

    demo = build(Console(NoEngine("not started"), "test"))
    assert demo.delete_cache == (600, KEPT_S)
