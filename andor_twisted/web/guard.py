"""Who may use the server, checked for every request before any resource sees it.

Why: the API drives a camera, and a browser is a confused deputy. Any page a lab member opens can send
requests to 127.0.0.1; a DNS-rebinding page can even be same-origin with it. So, in order, a request
is refused (4xx, JSON naming why) when:

1. its path holds a NUL, a backslash, or a ``.``/``..`` segment (also percent-encoded): static files;
2. its Host header is not a name the server answers to (``--allowed-hosts``, the loopback names, the
   listening addresses, the address the connection came in on): DNS rebinding;
3. it carries an Origin that is neither the server's own nor allowed (``--allowed-origins``), or a
   browser says it comes from another site (``Sec-Fetch-Site``): cross-site requests and WebSocket
   handshakes. CORS preflights are answered only for allowed origins;
4. tokens are configured (``--tokens``) and it carries none that is valid (``Authorization: Bearer``
   or the viewer's cookie), or its role does not allow it (``protocol.access``).

Every request that changes something is logged with the token's name and the peer: the audit trail.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger
from twisted.web import resource
from twisted.web.server import Request

from andor_twisted.protocol.access import ANONYMOUS, Principal, Tokens

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain"})
GUARDED = (b"api", b"stream")  # the static viewer files are public; what drives the camera is not
SAFE_METHODS = (b"GET", b"HEAD")
COOKIE = b"andor_token"
LOGIN = ("api", "login")


class Refusal(resource.Resource):
    """The answer to a refused request: ``status`` and a JSON body ``{"error", "message"}``."""

    isLeaf = True

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def render(self, request: Request) -> bytes:
        body = json.dumps({"error": self.code, "message": self.message}).encode()
        request.setResponseCode(self.status)
        request.setHeader("Content-Type", "application/json")
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return body


class Preflight(resource.Resource):
    """A CORS preflight from an allowed origin: what it may send."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        request.setResponseCode(204)
        request.setHeader("Access-Control-Allow-Methods", "GET, PUT, POST, DELETE")
        request.setHeader("Access-Control-Allow-Headers", "Authorization, Content-Type")
        request.setHeader("Access-Control-Max-Age", "600")
        return b""


def host_name(header: str) -> str:
    """The name in a Host header, without its port, lowercase: "[::1]:8000" -> "::1"."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    if header.count(":") > 1:  # a bare IPv6 address
        return header
    return header.rsplit(":", 1)[0] if ":" in header else header


def bad_path(segments: Iterable[bytes]) -> str | None:
    """Why a path's (decoded) segments are refused, or None."""
    for segment in segments:
        if b"\x00" in segment:
            return "a NUL byte"
        if b"\\" in segment or b"/" in segment:
            return "an encoded slash or backslash"
        if segment in (b".", b".."):
            return f"a {segment.decode()!r} segment"
    return None


@dataclass
class Guard:
    """The checks above, configured: ``hosts`` the names the server answers to (lowercase, no port),
    ``origins`` the foreign origins allowed (scheme://host[:port]), ``tokens`` None on an open server."""

    hosts: frozenset[str] = LOOPBACK_NAMES
    origins: frozenset[str] = frozenset()
    tokens: Tokens | None = None
    log: Logger = field(default_factory=Logger)

    def check(self, request: Request) -> resource.Resource | None:
        """None if ``request`` may go on (its ``principal`` set); else the refusal to answer it with."""
        request.principal = ANONYMOUS  # type: ignore[attr-defined]
        why = "a NUL byte" if b"\x00" in (request.uri or b"") else bad_path(request.postpath or [])
        if why is not None:
            return Refusal(400, "bad_path", f"the path holds {why}")
        refusal = self._check_host(request) or self._check_origin(request)
        if isinstance(refusal, Refusal):
            self.log.warn("refused {method} {uri} from {peer}: {why}", method=_text(request.method),
                          uri=_text(request.uri)[:200], peer=peer(request), why=refusal.message)
        return refusal

    def _check_host(self, request: Request) -> Refusal | None:
        header = request.getHeader("host")
        if header is None:
            return Refusal(400, "no_host", "the request has no Host header")
        name = host_name(header)
        if name in self.hosts or name == request.getHost().host:
            return None
        return Refusal(421, "unknown_host", f"this server does not answer to the name {name[:80]!r} "
                       "(a DNS-rebinding page?); the names it answers to are set with --allowed-hosts")

    def _check_origin(self, request: Request) -> Refusal | Preflight | None:
        guarded = bool(request.postpath) and (request.postpath or [b""])[0] in GUARDED
        origin = request.getHeader("origin")
        if origin is None:
            if guarded and request.getHeader("sec-fetch-site") in ("cross-site", "same-site"):
                return Refusal(403, "cross_origin", "requests from other sites' pages are refused")
            return None
        if origin == self.own_origin(request):
            return None
        if origin in self.origins:
            request.setHeader("Access-Control-Allow-Origin", origin)
            request.setHeader("Vary", "Origin")
            return Preflight() if request.method == b"OPTIONS" else None
        if not guarded and request.method in SAFE_METHODS:
            return None  # a foreign page may load the viewer's files, not use them on the camera
        return Refusal(403, "cross_origin", f"requests from pages at {origin[:100]!r} are refused: only this "
                       "server's own pages and --allowed-origins may drive the camera")

    @staticmethod
    def own_origin(request: Request) -> str:
        return f"{'https' if request.isSecure() else 'http'}://{(request.getHeader('host') or '').lower()}"


def peer(request: Request) -> str:
    address: Any = request.getClientAddress()
    host = getattr(address, "host", None)
    return f"{host}:{address.port}" if host is not None else str(address)


def _text(value: bytes | None) -> str:
    return urllib.parse.unquote((value or b"").decode("latin-1"))


__all__ = ["Guard", "Principal", "Refusal", "bad_path", "host_name"]
