"""Tokens, the roles they carry, and what each role may do: plain values, no I/O.

Why here: the site (who is asking), the streams (who may read a burst) and the bursts (who started
one) all need the same answer, and it is arithmetic on names. The token file is text (``name role
token`` a line, ``#`` comments); the server reads it, this module parses it. Tokens are compared in
constant time (``hmac.compare_digest``), against every entry, so the time taken says nothing of which
one nearly matched.
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass

MIN_TOKEN_CHARS = 20  # shorter tokens are refused: `python -c "import secrets; print(secrets.token_urlsafe())"`


class Role(enum.Enum):
    """A controller drives the camera (settings, snaps, bursts); a viewer watches (live view, status,
    the bursts it is given)."""

    CONTROLLER = "controller"
    VIEWER = "viewer"


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: the token's name and its role."""

    name: str
    role: Role

    @property
    def controls(self) -> bool:
        return self.role is Role.CONTROLLER


# everyone, on a server without tokens (loopback only): as today, anyone local drives the camera
ANONYMOUS = Principal("local", Role.CONTROLLER)


class TokenFileError(ValueError):
    """A token file that cannot be used, with the line at fault."""


class Tokens:
    """The tokens a server accepts: each with a name (for the audit trail) and a role."""

    def __init__(self, entries: list[tuple[Principal, str]]) -> None:
        self._entries = [(principal, token.encode()) for principal, token in entries]

    @classmethod
    def parse(cls, text: str) -> Tokens:
        """Lines ``name role token``; blank lines and ``#`` comments are skipped."""
        entries: list[tuple[Principal, str]] = []
        names: set[str] = set()
        tokens: set[str] = set()
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 3:
                raise TokenFileError(f"line {number}: expected 'name role token', got {len(parts)} fields")
            name, role, token = parts
            try:
                principal = Principal(name, Role(role))
            except ValueError:
                raise TokenFileError(f"line {number}: the role is controller or viewer, not {role!r}") from None
            if len(token) < MIN_TOKEN_CHARS:
                raise TokenFileError(f"line {number}: the token of {name!r} is shorter than {MIN_TOKEN_CHARS} "
                                     "characters")
            if name in names:
                raise TokenFileError(f"line {number}: the name {name!r} is used twice")
            if token in tokens:
                raise TokenFileError(f"line {number}: the token of {name!r} is used twice")
            names.add(name)
            tokens.add(token)
            entries.append((principal, token))
        if not entries:
            raise TokenFileError("the file holds no token")
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, token: str | bytes) -> Principal | None:
        """Whose ``token`` this is, or None: compared with every entry, each in constant time."""
        given = token.encode() if isinstance(token, str) else token
        found = None
        for principal, known in self._entries:
            if hmac.compare_digest(given, known):
                found = principal
        return found


def may(principal: Principal, method: str, path: tuple[str, ...]) -> bool:
    """Whether ``principal`` may make a request: a controller anything; a viewer reads (GET), except a
    snap (which takes the camera), and watches the live stream or a burst stream (checked per burst)."""
    if principal.controls:
        return True
    if path[:1] == ("stream",):
        return True
    return method in ("GET", "HEAD") and path[:2] != ("api", "snap")
