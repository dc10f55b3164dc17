"""Model paths: local folders only, and only under the configured model roots."""

from __future__ import annotations

from pathlib import Path


class ModelRoots:
    """Where models may be loaded from. No roots means any local path (a private console);
    with `--model-root`, paths must resolve (symlinks followed) inside one of them."""

    def __init__(self, roots: list[str | Path] | None = None):
        self.roots = [Path(r).expanduser().resolve() for r in roots or []]

    def resolve(self, model: str) -> Path:
        """The model folder, resolved; raises ValueError saying what is wrong."""
        path = Path(model).expanduser()
        if self.roots and not path.is_absolute():
            path = self.roots[0] / path
        real = path.resolve()
        if self.roots and not any(real == root or root in real.parents for root in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise ValueError(f"{model!r} is outside the allowed model roots ({allowed})")
        if not real.exists():
            raise ValueError(f"{model!r} does not exist; give a local Hugging Face model folder")
        if real.is_file() and real.suffix == ".gguf":  # the cpu backend reads GGUF files directly
            return real
        if not (real / "config.json").is_file():
            raise ValueError(f"{model!r} is not a model folder: it has no config.json")
        return real
