"""Whatever lies in the presets folder, the catalog lists it and says what is wrong with it; a save
writes the whole preset or leaves the old one, and replaces a saved preset only when asked."""

import errno
import os

import pytest

from presets.schema import Preset
from presets.store import PresetCatalog, PresetError, PresetExists


@pytest.fixture
def catalog(tmp_path):
    return PresetCatalog(user_dir=tmp_path)


def test_a_file_that_is_not_utf8_is_named_with_the_reason(catalog, tmp_path):
    (tmp_path / "latin.yaml").write_bytes("description: caf\xe9\n".encode("latin-1"))
    with pytest.raises(PresetError, match=r"latin.yaml: not UTF-8 text \(byte 16\)"):
        catalog.get("latin")
    assert "latin" in catalog.problems()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda path: path.mkdir(), "Is a directory"),
        (lambda path: path.symlink_to(path.parent / "gone.yaml"), "No such file"),
        (lambda path: path.symlink_to(path), "Too many levels of symbolic links"),
    ],
)
def test_a_folder_or_a_broken_link_is_listed_with_what_is_wrong(catalog, tmp_path, make, reason):
    make(tmp_path / "odd.yaml")
    assert "odd" in catalog.names()
    with pytest.raises(PresetError, match=reason):
        catalog.get("odd")
    assert reason in catalog.problems()["odd"]


def test_the_catalog_still_lists_and_reads_the_good_presets(catalog, tmp_path):
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe")
    catalog.save("good", Preset(backend="cpu"))
    assert {"bad", "good"} <= set(catalog.names())
    assert catalog.get("good").backend == "cpu"
    assert list(catalog.problems()) == ["bad"]


def test_a_saved_preset_is_replaced_only_when_asked(catalog):
    catalog.save("mine", Preset(backend="cpu", description="first"))
    with pytest.raises(PresetExists, match="exists already"):
        catalog.save("mine", Preset(backend="cpu", description="second"))
    assert catalog.get("mine").description == "first"
    catalog.save("mine", Preset(backend="cpu", description="second"), replace=True)
    assert catalog.get("mine").description == "second"


def test_a_full_disk_keeps_the_old_preset_says_so_and_leaves_no_temporary_file(catalog, tmp_path, monkeypatch):
    catalog.save("mine", Preset(backend="cpu", description="kept"))

    def disk_full(fd):  # what the OS answers when the write reaches a full disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(PresetError, match="is full: free some space"):
        catalog.save("mine", Preset(backend="cpu", description="lost?"), replace=True)
    monkeypatch.undo()
    assert catalog.get("mine").description == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]
