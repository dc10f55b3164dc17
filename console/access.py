"""Who may change the engine. Everyone may chat, watch VRAM and read presets; only admins
switch, restart, and save presets. Enforced in every handler, so the API obeys it too."""

from __future__ import annotations

from dataclasses import dataclass


class NotAllowed(PermissionError):
    """The user is logged in but not an admin."""


@dataclass(frozen=True)
class AccessPolicy:
    """`logins`: the console asks for a log-in. `admins`: who may change the engine; with
    log-ins and no admins named, every user who can log in is one. Without log-ins, the
    console is private (it listens on this machine only) and its one user is the admin, unless
    others can reach it (a public link, or an address other machines reach): then nobody is."""

    logins: bool = False
    admins: frozenset[str] = frozenset()
    reachable_by_others: bool = False

    def is_admin(self, username: str | None) -> bool:
        if not self.logins:
            return not self.reachable_by_others
        return not self.admins or username in self.admins

    def require_admin(self, username: str | None, action: str) -> None:
        if not self.is_admin(username):
            who = f"{username!r} is not" if username else "anonymous users are not"
            raise NotAllowed(f"only admins can {action}; {who} one (admins are named with --admin)")
