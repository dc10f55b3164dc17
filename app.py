"""LMDeploy Console: `python app.py --help`.

Import-safe on purpose: LMDeploy's PyTorch engine and the engine worker start processes
that re-import `__main__`, so nothing runs unless this file is the program.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import os
import sys
from pathlib import Path

AUTH_ENV = "LMDEPLOY_CONSOLE_AUTH"
# Gradio's queue holds this many events waiting, and runs this many at once: its own default is 40
# running, async events included, so a shared console's 41st chat waited for one of the first 40 to
# end. A streaming chat is a coroutine waiting on its engine, cheap to hold open.
EVENTS_AT_ONCE = 256
QUEUE_PLACES_EVERY_S = 1.0


def lighten_gradio_bookkeeping() -> None:
    """Spare every event and every paint two costs of Gradio's that buy this console nothing.

    - When an event ends, Gradio's queue rebuilds a pandas summary of the last 10,000 events for its
      monitoring page, which `launch(enable_monitoring=False)` turns off: 1.4 ms of CPU an event on a
      fresh server, 5.3 ms once 10,000 are kept (each timer tick of each open page is one). Its own
      settings keep few records and redo the summary once in a million events.
    - Gradio tries `import matplotlib` twice around every call and every paint of a stream, to set its
      backend; where matplotlib is not installed each try searches sys.path again. A None in
      sys.modules makes that import fail at once, as Python documents.
    Both before `Blocks.queue()`, which reads the settings."""
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", str(EVENTS_AT_ONCE))
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000000")
    if importlib.util.find_spec("matplotlib") is None:
        sys.modules["matplotlib"] = None


def serve(demo, login_hours: float | None = None, **launch_options) -> None:
    """Launch `demo` (a gr.Blocks) with the queue, the events at once and the Gradio settings the console
    runs with; the benchmarks serve their bare Gradio apps through it too, so both are served alike."""
    from starlette.middleware import Middleware

    from ui.in_the_loop import keep_in_the_loop
    from ui.login_page import LOGIN_KEPT_H, ApiInfoOnlyAfterLogin, LoginThrottle
    from ui.page_route import build_once_an_address
    from ui.queue_routes import queue_routes_first
    from ui.request_text import LoneSurrogatesRepaired

    lighten_gradio_bookkeeping()
    keep_in_the_loop()
    blocks_thread = not launch_options.pop("prevent_thread_lock", False)
    demo.queue(
        max_size=EVENTS_AT_ONCE,
        default_concurrency_limit=8,
        # Gradio's "auto" tells every queued event its place again each time any event starts: with 256
        # chats joining at once that is ~33,000 messages, a third of Gradio's own CPU per chat (measured
        # on a bare Gradio chat: 12 ms -> 8.5 ms a chat). A chat is never queued by Gradio (no concurrency
        # limit) and says itself why it waits, so places in Gradio's queue are sent once a second instead.
        status_update_rate=QUEUE_PLACES_EVERY_S,
    )
    demo.launch(
        max_threads=EVENTS_AT_ONCE,
        enable_monitoring=False,
        # what Gradio's own checks of a call refuse (a knob that is no number, a missing argument) reaches
        # the caller with its reason, not as a bare "Error"; secrets never reach an exception's text
        show_error=True,
        app_kwargs={
            "middleware": [
                Middleware(LoginThrottle, login_kept_s=(login_hours or LOGIN_KEPT_H) * 3600),
                Middleware(ApiInfoOnlyAfterLogin),
                Middleware(LoneSurrogatesRepaired),
            ]
        },
        prevent_thread_lock=True,
        **launch_options,
    )
    queue_routes_first(demo.server_app)
    build_once_an_address(demo.server_app)
    if blocks_thread:
        demo.block_thread()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from backends import KINDS
    from backends.remote import API_KEY_ENV, DEFAULT_BASE_URL

    parser = argparse.ArgumentParser(prog="app.py", description="A web console for LMDeploy.")
    parser.add_argument(
        "--backend",
        choices=["auto", *KINDS],
        default="auto",
        help="auto: LMDeploy where a CUDA GPU is usable, else the CPU fallback",
    )
    parser.add_argument(
        "--model",
        help="a local Hugging Face model folder (default: the embedded SmolLM2-135M); "
        "for --backend remote, the served model name",
    )
    parser.add_argument(
        "--engine",
        choices=["auto", "turbomind", "pytorch"],
        default="auto",
        help="LMDeploy engine (auto: TurboMind where it supports the model)",
    )
    parser.add_argument(
        "--preset",
        help="start on a preset: a name from presets/ (e.g. kv-int8) or a YAML file; replaces --backend/--model/--engine",
    )
    parser.add_argument(
        "--admin",
        action="append",
        default=[],
        help="a user (from --auth) who may switch presets, restart the engine and save presets (repeatable); "
        "with --auth and no --admin, every user may",
    )
    shared_note = "; default on a console others can reach (--share, --auth, another address than this machine's): "
    for flag, what, default in (
        ("--max-new-tokens", "new tokens a reply may ask for", "2048"),
        ("--max-tool-rounds", "rounds a tool loop may run", "8"),
        ("--chats-at-once", "chats one user (log-in name, else address) may stream at once", "2"),
    ):
        parser.add_argument(flag, type=int, help=f"the most {what}{shared_note}{default}, else none; 0: no limit")
    parser.add_argument(
        "--model-root",
        action="append",
        default=[],
        help="allow models only under this folder (repeatable); default: any local path",
    )
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help="OpenAI-compatible server for --backend remote")
    parser.add_argument("--api-key", help=f"API key of the remote server (or set ${API_KEY_ENV})")
    parser.add_argument("--server-name", default="127.0.0.1", help="address to listen on (0.0.0.0 for all)")
    parser.add_argument("--server-port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also serve through a public Gradio link (needs --auth)")
    parser.add_argument(
        "--share-without-auth",
        action="store_true",
        help="allow --share without --auth: anyone with the link can use the console and its GPU",
    )
    parser.add_argument(
        "--auth",
        action="append",
        help=f"USER:PASSWORD, or a file of such lines (repeatable, mixed as you like; or set ${AUTH_ENV})",
    )
    parser.add_argument(
        "--login-hours", type=float, default=12.0, help="how long a log-in lasts before the page asks again"
    )
    parser.add_argument(
        "--room-processes",
        type=int,
        default=1,
        help="serve the pages from this many console processes behind one address, each page kept on one, "
        "for a room chatting at once; they share one engine: a process of its own, whose preset (and side B) "
        "an admin changes on any page for all, or the server of --backend remote, which nobody switches from "
        "them; comparisons and quantizations need a console of one process",
    )
    args = parser.parse_args(argv)
    if not args.login_hours > 0:  # also NaN
        parser.error("--login-hours takes a number of hours above 0, e.g. 12")
    if args.room_processes < 1:
        parser.error("--room-processes takes 1 or more")
    return args


def room_shares_a_server(args: argparse.Namespace) -> bool:
    """Whether a room's processes each reach the engine's own server (--backend remote), rather than an
    engine host the room starts for them."""
    from backends import kinds_for

    return args.preset is None and all(kind.engine_outside for kind in kinds_for(args.backend))


def load_auth(values: list[str] | str | None) -> list[tuple[str, str]] | None:
    """Credentials from every --auth (each `user:password` or a file of such lines), else the
    environment's; a user named twice is refused rather than one password silently winning."""
    if isinstance(values, str):
        values = [values]
    values = values or ([os.environ[AUTH_ENV]] if os.environ.get(AUTH_ENV) else [])
    pairs = [pair for value in values for pair in _credentials(value)]
    if not pairs:
        return None
    users = [user for user, _ in pairs]
    twice = sorted({user for user in users if users.count(user) > 1})
    if twice:
        raise SystemExit(f"--auth: {', '.join(twice)} given more than once; give each user one password")
    return pairs


def _credentials(value: str) -> list[tuple[str, str]]:
    path = Path(value)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else [value]
    pairs = [tuple(line.split(":", 1)) for line in lines if line.strip() and not line.startswith("#")]
    if not pairs or any(len(pair) != 2 or not all(pair) for pair in pairs):
        raise SystemExit("--auth takes USER:PASSWORD or a file of USER:PASSWORD lines")
    return pairs


def command_line_spec(args: argparse.Namespace, roots):
    """The backend the flags name; a local model path must lie under the model roots."""
    from backends import BackendSpec, EngineOptions, kinds_for

    model = args.model
    if model and any(kind.takes_local_model for kind in kinds_for(args.backend)):
        model = str(roots.resolve(model))
    engine = EngineOptions(engine=args.engine)
    return BackendSpec(args.backend, model=model, base_url=args.base_url, api_key=args.api_key, engine=engine)


def listens_beyond_this_machine(server_name: str) -> bool:
    """Whether other machines can reach the address the console listens on (0.0.0.0, a LAN IP)."""
    import ipaddress

    if server_name == "localhost":
        return False
    try:
        return not ipaddress.ip_address(server_name).is_loopback
    except ValueError:  # a host name: assume others can reach it
        return True


def check_sharing(args: argparse.Namespace, auth) -> str | None:
    """Refuse a public link nobody has to log in to, unless asked for in so many words;
    returns the warning the page shows when others can reach a console without a log-in."""
    if auth:
        return None
    if not args.share:
        if listens_beyond_this_machine(args.server_name):
            return (
                f"This console listens on {args.server_name} without a log-in: anyone who can reach it can chat, and "
                "nobody can switch presets, restart the engine, compare or quantize. To manage it from here, "
                "restart it with --auth (and --admin)."
            )
        return None
    if not args.share_without_auth:
        raise SystemExit(
            "--share puts the console, and the GPU behind it, on a public URL: add --auth USER:PASSWORD "
            f"(or a file of them, or ${AUTH_ENV}), or pass --share-without-auth to accept that anyone "
            "with the link can use it"
        )
    return "This console is shared on a public link without a log-in: anyone with the link can use it."


def access_policy(args: argparse.Namespace, auth):
    """Admins must be users who can log in; without log-ins, a console others can reach has no admin;
    in a room whose processes each reach the engine's server, nobody changes it."""
    from console.access import AccessPolicy, room_engine_fixed

    users = {user for user, _ in auth or []}
    unknown = sorted(set(args.admin) - users)
    if unknown:
        raise SystemExit(f"--admin {', '.join(unknown)}: not a user of --auth")
    reachable = args.share or listens_beyond_this_machine(args.server_name)
    room = args.room_processes > 1
    return AccessPolicy(
        logins=bool(auth),
        admins=frozenset(args.admin),
        reachable_by_others=reachable,
        limits=usage_limits(args, auth),
        engine_fixed=room_engine_fixed(args.room_processes) if room and room_shares_a_server(args) else None,
    )


def usage_limits(args: argparse.Namespace, auth):
    """Each limit as given (0: none); one not given is SHARED_LIMITS' on a console others can reach."""
    from console.access import SHARED_LIMITS, UsageLimits

    shared = args.share or listens_beyond_this_machine(args.server_name) or bool(auth)
    chosen = {}
    for name in ("max_new_tokens", "max_tool_rounds", "chats_at_once"):
        given = getattr(args, name)
        chosen[name] = (getattr(SHARED_LIMITS, name) if shared else None) if given is None else (given or None)
    return UsageLimits(**chosen)


def serve_room(args: argparse.Namespace, argv: list[str]) -> None:
    """The room's address: its member processes (this program with the same flags) behind the router."""
    import signal

    from room.members import Members

    members = Members(Path(__file__), argv, args.room_processes, host_the_engine=not room_shares_a_server(args))
    # a kill's SIGTERM ends the room as Ctrl-C does, its processes with it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        asyncio.run(_route_room(members, args))
    finally:
        members.stop()


async def _route_room(members, args: argparse.Namespace) -> None:
    from room.router import Router

    try:  # the address first: no process started for a port already taken
        await Router(members.members, members.alive).serve(args.server_name, args.server_port)
    except OSError as exc:
        raise SystemExit(
            f"cannot listen on {args.server_name}:{args.server_port} ({exc}); choose another --server-port"
        ) from None
    print(f"Starting {args.room_processes} console processes for the room ...", flush=True)
    await asyncio.to_thread(members.start)
    print(f"Running on http://{args.server_name}:{args.server_port}/ ({args.room_processes} processes)", flush=True)
    if args.share:
        print(f"Public link: {await asyncio.to_thread(open_share_link, args.server_port)}", flush=True)
    # every request of the room passes here: what starting built is frozen, as backends/heap.py says why
    # (not imported: the router loads nothing of the console's but its count of failed log-ins)
    gc.collect()
    gc.freeze()
    await members.keep_running()


def open_share_link(port: int) -> str:
    """A public Gradio link to this machine's `port`, made as Gradio's launch(share=True) makes one."""
    import secrets
    from urllib.parse import urlparse, urlunparse

    from gradio import networking

    url = networking.setup_tunnel("127.0.0.1", port, secrets.token_urlsafe(32), None, None)
    return urlunparse(("https",) + urlparse(url)[1:])


async def start_console(args: argparse.Namespace, roots, access, sampler):
    """The Console on the engine the flags name: a preset, or --backend/--model/--engine."""
    from console.core import Console

    if args.preset:
        return await Console.start_preset(args.preset, sampler=sampler, model_roots=roots, access=access)
    return await Console.start(command_line_spec(args, roots), sampler=sampler, model_roots=roots, access=access)


def main(argv: list[str] | None = None) -> None:
    from room.members import end_with_the_room, hosts_the_engine, member_place, room_engine

    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    auth = load_auth(args.auth)
    warning = check_sharing(args, auth)
    place, hosting = member_place(), hosts_the_engine()
    if args.room_processes > 1 and not (place or hosting):
        serve_room(args, argv)
        return
    if place or hosting:
        end_with_the_room()
    # The console never downloads weights: on an air-gapped server a hub lookup only hangs.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Gradio asks matplotlib for its backend around every event; where matplotlib is installed and names none,
    # a process's first event imported pyplot (0.5 s of a room process's first page on an H100 machine)
    os.environ.setdefault("MPLBACKEND", "agg")

    from backends import BackendError
    from backends.heap import set_aside
    from console.access import AccessPolicy
    from console.log_ins import SLOWDOWN_NOTICE
    from console.paths import ModelRoots
    from console.room_engine import host_engine, join_engine
    from presets.store import PresetError
    from telemetry.vram import VramSampler
    from ui import build

    roots = ModelRoots(args.model_root)
    access = access_policy(args, auth)
    engine = room_engine()
    print(f"Starting {'preset ' + args.preset if args.preset else 'the ' + args.backend + ' backend'} ...", flush=True)
    try:
        if hosting and engine:  # serves until the room ends it
            # the room's processes check who may do what; the host does what they ask
            starting = start_console(args, roots, AccessPolicy(), VramSampler())
            asyncio.run(host_engine(starting, engine.path, engine.key))
            return
        sampler = VramSampler().start()
        if place and engine:
            console = asyncio.run(
                join_engine(engine.path, engine.key, sampler=sampler, model_roots=roots, access=access)
            )
        else:
            console = asyncio.run(start_console(args, roots, access, sampler))
    except (BackendError, PresetError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    for name, problem in console.catalog.problems().items():  # listed on the Presets tab as invalid too
        print(f"preset {name} cannot be used: {problem}", flush=True)
    state = console.state()
    print(f"Backend ready: {state.info.kind} / {state.info.engine} / {state.info.model} ({state.reason})", flush=True)
    demo = build(console, warning)
    serve(
        demo,
        # a room's member listens on this machine only, behind the room's address
        server_name="127.0.0.1" if place else args.server_name,
        server_port=place.port if place else args.server_port,
        share=args.share and not place,
        auth=auth,
        auth_message=SLOWDOWN_NOTICE if auth else None,
        login_hours=args.login_hours,
        max_file_size="5mb",
        footer_links=["api", "settings"],
        quiet=True,  # Gradio's own lines tell a user of this command line to edit launch()
        prevent_thread_lock=True,
    )
    print(f"Running on {demo.local_url}", flush=True)
    if place:
        print(f"(console process {place.position + 1} of {place.members} of the room)", flush=True)
    elif demo.share_url:
        print(f"Public link: {demo.share_url}", flush=True)
    else:
        print("For a public link, start it with --share and --auth (README: Sharing).", flush=True)
    set_aside()  # what starting built is kept while the console serves (backends/heap.py)
    demo.block_thread()


if __name__ == "__main__":
    main()
