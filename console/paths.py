"""Model paths: local folders only, and only under the configured model roots."""

from __future__ import annotations

from pathlib import Path

from backends.embedded_model import resolve_model_path


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
        real = path.resolve()
        if self.roots and not any(real == root or root in real.parents for root in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise ValueError(f"{model!r} is outside the allowed model roots ({allowed})")
        return resolve_model_path(str(real))
