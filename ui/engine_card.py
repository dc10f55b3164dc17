"""The running engine's status card: what runs, how it is quantized, where the memory goes."""

from __future__ import annotations

from backends import running_kind
from backends.lmdeploy_config import KV_MODES, EngineOptions, KvQuant
from console.engine_state import EngineState, SwitchReport
from telemetry.vram import MIB, Sample


def engine_card(state: EngineState, sample: Sample, last_switch: SwitchReport | None) -> str:
    info, details = state.info, state.info.details
    kind = running_kind(info)
    if kind is None:
        return f"### No engine running\n{details.get('reason', '')}"
    config = details.get("config", {})
    rows = [
        ("preset", state.preset or "(command line)"),
        ("backend", info.kind),
        ("model", f"`{info.model}`"),
        ("engine", info.engine),
    ]
    if details.get("random_weights"):
        rows.append(("weights", "**random** (a stand-in for speed and memory; its answers are noise)"))
    if kind.lmdeploy_engine:  # its options as it runs them, and where its GPU memory goes
        rows += [
            (EngineOptions.option_meta(name)["card"], _option_text(name, value))
            for name, value in config.items()
            if name != "session_len"  # the one the engine settled on follows
        ]
        rows += [
            ("session length", details.get("session_len")),
            ("KV cache capacity", _kv_capacity(details.get("kv_cache") or {})),
            ("memory", _breakdown(details, sample)),
            ("load time", f"{details.get('load_seconds', 0):.1f} s"),
        ]
    else:
        rows += [
            (key.replace("_", " "), _readable(key, value)) for key, value in details.items() if key != "random_weights"
        ]
    if last_switch and last_switch.preset == state.preset and last_switch.vram_delta_mib is not None:
        rows.append(
            (
                "last switch",
                f"{last_switch.load_seconds:.1f} s; VRAM {last_switch.vram_before_mib / 1024:.2f} → "
                f"{last_switch.vram_after_mib / 1024:.2f} GiB ({last_switch.vram_delta_mib / 1024:+.2f})",
            )
        )
    return "| running engine | as it runs |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def _option_text(name: str, value) -> str:
    """An engine option as the engine runs it: a KV policy with what it stores, unset ones as LMDeploy's default."""
    if name == "quant_policy" and value is not None:
        return f"{value} ({KV_MODES[KvQuant(value)].label})"
    if value is None:
        return "hf" if name == "model_format" else "LMDeploy's default"
    return str(value)


def _readable(key: str, value):
    """A detail as the rest of the card shows it: byte counts in MiB/GiB."""
    if value is None:  # e.g. no tool parser: the console's own tool prompt serves
        return "none"
    if key.endswith("_bytes_per_token"):
        return f"{value / 2**10:.1f} KiB"
    if key.endswith("_bytes") and isinstance(value, int):
        return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:,.0f} MiB"
    return value


def _kv_capacity(kv: dict) -> str:
    if not kv.get("blocks"):
        return "not reported"
    approx = "≈ " if kv.get("source") == "estimate" else ""
    text = f"{approx}{kv['blocks']:,} blocks × {kv['block_size']} tokens = {approx}{kv['tokens']:,} tokens"
    if kv.get("bytes"):
        text += f" ({kv['bytes'] / 2**30:.2f} GiB)"
    return text + (" (estimated: TurboMind does not report its blocks)" if approx else "")


def _breakdown(details: dict, sample: Sample) -> str:
    """Weights (checkpoint size) + KV cache (blocks × block bytes) + the rest of the worker's VRAM."""
    pid = details.get("worker_pid")
    held = sum(p.used_mib for g in sample.gpus for p in g.processes if p.pid == pid) * MIB
    weights, kv = details.get("weights_bytes") or 0, (details.get("kv_cache") or {}).get("bytes") or 0
    if not held:
        return f"weights {weights / 2**30:.2f} GiB, KV cache {kv / 2**30:.2f} GiB (per-process VRAM not visible)"
    other = max(held - weights - kv, 0)
    return (
        f"worker holds {held / 2**30:.2f} GiB: weights {weights / 2**30:.2f} + KV cache {kv / 2**30:.2f} + "
        f"other {other / 2**30:.2f} (CUDA context, activations, workspace)"
    )
