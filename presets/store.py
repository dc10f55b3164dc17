"""Finding, reading and saving preset files. Shipped presets live beside this module."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

import yaml
from pydantic import ValidationError

from backends import Refusal
from model_folders.cache import cache_dir

from .schema import GenerationDefaults, Preset

SHIPPED_DIR = Path(__file__).resolve().parent
USER_PRESETS_ENV = "LMDEPLOY_CONSOLE_PRESETS"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class PresetError(Refusal, ValueError):
    """A preset that cannot be used; the message names the file and the field."""


class PresetExists(PresetError):
    """A save under a name a preset of the user's already has, without asking to replace it."""


def parse_preset(text: str, source: str) -> Preset:
    """Validate YAML text as a preset; `source` names it in errors."""
    if not isinstance(text, str):  # what a client sent where the page's editor sends text
        raise PresetError(f"{source}: a preset is YAML text, not {type(text).__name__}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PresetError(f"{source}: not valid YAML{_where(exc)}: {getattr(exc, 'problem', None) or exc}") from exc
    if not isinstance(data, dict):
        raise PresetError(f"{source}: a preset is a YAML mapping of fields, e.g. `quant_policy: 8`")
    try:
        return Preset.model_validate(data)
    except ValidationError as exc:
        raise PresetError(f"{source}: {_first_problems(exc)}") from exc


def _where(exc: yaml.YAMLError) -> str:
    """' at line L, column C' in words, where PyYAML knows (its own message draws a caret)."""
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def to_yaml(preset: Preset) -> str:
    """The preset as YAML holding only what differs from the defaults, and always which backend runs it
    (a reader of a copy should not have to know the default); what it is and runs first."""
    fields = preset.model_dump(mode="json", exclude_defaults=True)
    fields.setdefault("backend", preset.backend)
    first = {k: fields.pop(k) for k in ("description", "backend", "model") if k in fields}
    return yaml.safe_dump(first | fields, sort_keys=False, allow_unicode=True)


class PresetCatalog:
    """The shipped presets plus the user's own, which are saved to `user_dir`."""

    def __init__(self, shipped_dir: Path = SHIPPED_DIR, user_dir: Path | None = None):
        self.shipped_dir = shipped_dir
        self.user_dir = user_dir or Path(os.environ.get(USER_PRESETS_ENV, cache_dir() / "presets"))

    def names(self) -> list[str]:
        shipped = sorted(p.stem for p in self.shipped_dir.glob("*.yaml"))
        user = sorted(p.stem for p in self.user_dir.glob("*.yaml") if p.stem not in shipped)
        return shipped + user

    def locate(self, name: str) -> Path:
        """A preset's file: `name` is a preset name or a path to a YAML file."""
        return Path(name) if name.endswith((".yaml", ".yml")) else self.path(name)

    def path(self, name: str) -> Path:
        could_be_a_file = len(name) <= 200 and not {"/", "\\", "\0"} & set(name)  # found by fuzzing /switch_preset
        for folder in (self.shipped_dir, self.user_dir) if could_be_a_file else ():
            candidate = folder / f"{name}.yaml"
            if os.path.lexists(candidate):  # a folder or a broken link too: reading it says what is wrong
                return candidate
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise PresetError(f"no preset named {shown!r}; the presets are: {', '.join(self.names())}")

    def get(self, name: str) -> Preset:
        """Read a preset by name, or from a YAML file path."""
        path = self.locate(name)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PresetError(f"cannot read preset {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise PresetError(f"{path.name}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from exc
        return parse_preset(text, path.name)

    def problems(self) -> dict[str, str]:
        """Each listed preset that cannot be read or is invalid, with what is wrong with it."""
        found = {}
        for name in self.names():
            try:
                self.get(name)
            except PresetError as exc:
                found[name] = str(exc)
        return found

    def save(self, name: str, preset: Preset, *, replace: bool = False) -> Path:
        """Write a user preset, whole or not at all; shipped names cannot be overwritten, and a
        preset of the user's only with `replace`."""
        if not _NAME.match(name):
            raise PresetError(f"preset name {name!r}: use lowercase letters, digits, '.', '_' or '-' (up to 64)")
        if (self.shipped_dir / f"{name}.yaml").exists():
            raise PresetError(f"{name!r} is a shipped preset; save under another name")
        self.user_dir.mkdir(parents=True, exist_ok=True)
        path = self.user_dir / f"{name}.yaml"
        if not replace and os.path.lexists(path):
            raise PresetExists(f"a preset named {name!r} exists already; ask to replace it, or pick another name")
        _write_whole(path, to_yaml(preset))
        return path


def _write_whole(path: Path, text: str) -> None:
    """Write beside the file, then rename over it: a full disk or a kill mid-write leaves the old
    preset as it was, and no temporary file behind."""
    temporary = None
    try:
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, suffix=".tmp", delete=False) as out:
            temporary = Path(out.name)
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise PresetError(f"the disk holding {path.parent} is full: free some space, then save again") from exc
        raise PresetError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _first_problems(exc: ValidationError, limit: int = 3) -> str:
    problems = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(part) for part in error["loc"]) or "preset"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            model = GenerationDefaults if error["loc"][0] == "generation" else Preset
            known = ", ".join(model.model_fields)
            message = f"unknown field (known fields: {known})"
        problems.append(f"{where}: {message}")
    return "; ".join(problems)
