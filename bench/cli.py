"""The command-line options every benchmark takes to pick the backend it measures."""

from __future__ import annotations

import argparse
from pathlib import Path

from backends import BackendSpec, EngineOptions


def backend_parser(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["cpu", "lmdeploy"], default="cpu")
    parser.add_argument("--engine", choices=["auto", "turbomind", "pytorch"], default="auto")
    parser.add_argument("--model", help="a local model folder (default: the embedded SmolLM2-135M)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--cache-max-entry-count", type=float, help="the KV cache's share of free GPU memory")
    return parser


def backend_spec(args: argparse.Namespace) -> BackendSpec:
    engine = EngineOptions(engine=args.engine, cache_max_entry_count=args.cache_max_entry_count)
    return BackendSpec(kind=args.backend, model=args.model, engine=engine)


def emit(report: str, out: str | None) -> None:
    """Print a benchmark's report, and keep it in `out` when given."""
    print(report)
    if out:
        Path(out).write_text(report + "\n", encoding="utf-8")
