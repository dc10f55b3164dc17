"""Model paths: local folders only, and only under the configured model roots."""

from __future__ import annotations

from pathlib import Path

from backends import resolve_model_path


class ModelRoots:
    """Where models may be loaded from. No roots means any local path (a private console);
    with `--model-root`, paths must resolve (symlinks followed) inside one of them."""

    def __init__(self, roots: list[str | Path] | None = None):
        self.roots = [Path(r).expanduser().resolve() for r in roots or []]

    def resolve(self, model: str) -> Path:
        """The model, resolved. ValueError: outside the roots; ModelLoadError: not a model."""
        path = Path(model).expanduser()
        if self.roots and not path.is_absolute():
            path = self.roots[0] / path
        return resolve_model_path(str(self._inside(path, model)))

    def new_folder(self, folder: str, default_parent: Path) -> Path:
        """Where the console may write a model (a quantization's output): inside the roots
        when there are any; a relative name goes under the first root, or `default_parent`."""
        path = Path(folder).expanduser()
        if not path.is_absolute():
            path = (self.roots[0] if self.roots else default_parent) / path
        return self._inside(path, folder)

    def _inside(self, path: Path, asked: str) -> Path:
        real = path.resolve()
        if self.roots and not any(real == root or root in real.parents for root in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise ValueError(f"{asked!r} is outside the allowed model roots ({allowed})")
        return real
