"""Who may change the engine. Everyone may chat, watch VRAM and read presets; only admins
switch, restart, and save presets. Enforced in every handler, so the API obeys it too."""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field

from backends import Refusal


class NotAllowed(Refusal, PermissionError):
    """The user is logged in but not an admin."""


# why nobody may change the engine of a console others reach without a log-in, and what its operator does about it
OPEN_CONSOLE = (
    "others can reach this console without a log-in, so nobody may change its engine; its operator can "
    "start it with --auth USER:PASSWORD and --admin USER"
)


class OverLimit(Refusal, ValueError):
    """A request beyond what the operator lets one user ask of a shared engine."""


@dataclass(frozen=True)
class UsageLimits:
    """What one user may ask of the engine (None: no limit), set on the command line. A console
    others can reach has limits unless the operator lifts them: one user's 32,768-token reply or
    endless tool loop would hold the engine for everyone."""

    max_new_tokens: int | None = None
    max_tool_rounds: int | None = None
    chats_at_once: int | None = None

    def check_new_tokens(self, asked: int) -> None:
        if self.max_new_tokens is not None and asked > self.max_new_tokens:
            raise OverLimit(
                f"this console allows replies of up to {self.max_new_tokens} new tokens (--max-new-tokens); "
                f"{asked} asked"
            )

    def check_tool_rounds(self, asked: int) -> None:
        if asked < 1:
            raise OverLimit(f"max_rounds must be 1 or more ({asked} given)")
        if self.max_tool_rounds is not None and asked > self.max_tool_rounds:
            raise OverLimit(f"this console allows up to {self.max_tool_rounds} tool rounds (--max-tool-rounds)")


SHARED_LIMITS = UsageLimits(max_new_tokens=2048, max_tool_rounds=8, chats_at_once=2)


class ChatSlots:
    """Chats streaming at once, per user (a log-in name, else an address)."""

    def __init__(self, limit: int | None):
        self._limit = limit
        self._held: Counter[str] = Counter()

    def take(self, who: str) -> ExitStack:
        """Hold one of `who`'s slots from now (OverLimit where none is free); leaving the returned
        context gives it back."""
        if self._limit is not None and self._held[who] >= self._limit:
            raise OverLimit(
                f"you have {self._held[who]} chats streaming already; this console allows {self._limit} at once "
                "(--chats-at-once): wait for one to end, or press Stop"
            )
        self._held[who] += 1
        release = ExitStack()
        release.callback(self._held.subtract, [who])
        return release


def room_engine_fixed(processes: int) -> str:
    """Why nobody changes the engine from a room whose processes each reach the engine's own server: each
    holds its own connection and engine state, so a switch in one would leave the others on the old one."""
    return (
        f"this console serves its room from {processes} processes in front of one engine server "
        "(--room-processes); to change the engine, restart that server with other flags"
    )


@dataclass(frozen=True)
class AccessPolicy:
    """`logins`: the console asks for a log-in. `admins`: who may change the engine; with
    log-ins and no admins named, every user who can log in is one. Without log-ins, the
    console is private (it listens on this machine only) and its one user is the admin, unless
    others can reach it (a public link, or an address other machines reach): then nobody is.
    `engine_fixed`: why nobody may change the engine whoever they are (room_engine_fixed)."""

    logins: bool = False
    admins: frozenset[str] = frozenset()
    reachable_by_others: bool = False
    limits: UsageLimits = field(default_factory=UsageLimits)
    engine_fixed: str | None = None

    def is_admin(self, username: str | None) -> bool:
        if self.engine_fixed:
            return False
        if not self.logins:
            return not self.reachable_by_others
        return not self.admins or username in self.admins

    def admin_depends_on_user(self) -> bool:
        """Whether some users are admins and others not (log-ins, admins named); else `is_admin` answers
        the same for everyone."""
        return self.logins and bool(self.admins) and not self.engine_fixed

    def require_admin(self, username: str | None, action: str) -> None:
        if not self.is_admin(username):
            if self.engine_fixed or not self.logins:
                raise NotAllowed(f"nobody can {action} here: {self.engine_fixed or OPEN_CONSOLE}")
            who = repr(username) if username else "a user who has not logged in"
            raise NotAllowed(f"only admins can {action}; {who} is not one (admins are named with --admin)")

    def what_they_may_do(self, username: str | None) -> str:
        """A line for the page's header: who this is, and what they may do."""
        who = username or "you"
        if self.is_admin(username):
            return f"{who}: may chat, switch presets, compare, quantize and manage the fleet"
        if self.engine_fixed or not self.logins:
            return f"{who}: may chat, use the tools and watch the VRAM; {self.engine_fixed or OPEN_CONSOLE}"
        return (
            f"{who}: may chat, use the tools and watch the VRAM, not switch presets, compare, quantize or "
            "manage the fleet (admins only)"
        )
