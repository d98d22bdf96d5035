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
import os
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger
from twisted.web import http, resource
from twisted.web.server import Request

from andor_twisted.protocol import strictjson
from andor_twisted.protocol.access import ANONYMOUS, Principal, TokenFileError, Tokens, may

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain"})
GUARDED = (b"api", b"stream", b"metrics")  # the static viewer files are public; the camera and its figures are not
SAFE_METHODS = (b"GET", b"HEAD")
COOKIE = b"andor_token"
SESSION_PATHS = {(b"api", b"login"), (b"api", b"logout"), (b"api", b"session")}
TOKEN_FILE_CHECK_S = 1.0  # how often the token file is looked at for changes (rotation without a restart)


def token_file_problem(path: str) -> str | None:
    """Why the token file at ``path`` may not be used (readable by others), or None."""
    mode = os.stat(path).st_mode
    if mode & 0o077:
        return f"{path} is readable or writable by others (mode {mode & 0o777:o}): chmod 600 {path}"
    return None


def read_tokens(path: str) -> Tokens:
    """The tokens in the file at ``path``; TokenFileError saying why not."""
    problem = token_file_problem(path)
    if problem is not None:
        raise TokenFileError(problem)
    with open(path, encoding="utf-8") as f:
        try:
            return Tokens.parse(f.read())
        except TokenFileError as e:
            raise TokenFileError(f"{path}: {e}") from None


class TokenFile:
    """The tokens of a file, read again when it changes (at most every TOKEN_FILE_CHECK_S): a rotated
    token works, and a removed one stops working, without a restart. A file made unusable (wrong mode,
    bad line) keeps the tokens read last, and says why in the log."""

    log = Logger()

    def __init__(self, path: str, now: Callable[[], float]) -> None:
        self.path, self.now = path, now
        self.tokens = read_tokens(path)
        self._stamp = self._stat()
        self._checked = now()

    def _stat(self) -> tuple[float, int, int]:
        st = os.stat(self.path)
        return st.st_mtime, st.st_size, st.st_ino

    def current(self) -> Tokens:
        if self.now() - self._checked >= TOKEN_FILE_CHECK_S:
            self._checked = self.now()
            try:
                stamp = self._stat()
                if stamp != self._stamp:
                    self.tokens = read_tokens(self.path)
                    self._stamp = stamp
                    self.log.info("read {n} tokens from {path}", n=len(self.tokens), path=self.path)
            except (OSError, TokenFileError) as e:
                self.log.error("keeping the tokens read before: {why}", why=e)
        return self.tokens


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


class Session(resource.Resource):
    """``/api/session`` (GET: who am I), ``/api/login`` (POST {"value": token}: sets the viewer's cookie,
    HttpOnly and SameSite=Strict, so no script reads it and no other site sends it) and ``/api/logout``."""

    isLeaf = True

    def __init__(self, guard: Guard) -> None:
        super().__init__()
        self.guard = guard

    def render(self, request: Request) -> bytes:
        action = _text((request.postpath or [b"", b""])[1])
        method = request.method
        if action == "session" and method in SAFE_METHODS:
            principal = self.guard.principal_of(request)
            if principal is None:
                return Refusal(401, "unauthorized", "no valid token: log in").render(request)
            return _json(request, 200, {"value": {"name": principal.name, "role": principal.role.value,
                                                  "tokens": self.guard.tokens is not None}})
        if action == "logout" and method == b"POST":
            request.addCookie(COOKIE, b"", path=b"/", expires=b"Thu, 01 Jan 1970 00:00:00 GMT", httpOnly=True,
                              sameSite="strict", secure=request.isSecure())
            return _json(request, 200, {"value": None})
        if action == "login" and method == b"POST":
            return self.login(request)
        allowed = "GET" if action == "session" else "POST"
        request.setHeader("Allow", allowed)
        return Refusal(405, "method_not_allowed", f"/api/{action} takes {allowed}").render(request)

    def login(self, request: Request) -> bytes:
        if self.guard.tokens is None:
            return Refusal(400, "no_tokens", "this server takes no tokens (it listens on loopback only)") \
                .render(request)
        kind = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            return Refusal(415, "unsupported_media_type", "log in with Content-Type: application/json").render(request)
        try:
            body = strictjson.loads((request.content.read(4096) if request.content else b"") or b"null")
        except strictjson.StrictJSONError as e:
            return Refusal(400, e.code, str(e)).render(request)
        token = body.get("value") if isinstance(body, dict) else None
        principal = self.guard.tokens.current().find(token) if isinstance(token, str) and token else None
        if principal is None or not isinstance(token, str):
            self.guard.log.warn("failed login from {peer}", peer=peer(request))
            return Refusal(401, "unauthorized", "that is not a valid token").render(request)
        request.addCookie(COOKIE, token.encode(), path=b"/", httpOnly=True, sameSite="strict",
                          secure=request.isSecure())
        self.guard.log.info("audit: {name} ({role}) logged in from {peer}", name=principal.name,
                            role=principal.role.value, peer=peer(request))
        return _json(request, 200, {"value": {"name": principal.name, "role": principal.role.value, "tokens": True}})


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
    tokens: TokenFile | None = None
    log: Logger = field(default_factory=Logger)

    def check(self, request: Request) -> resource.Resource | None:
        """None if ``request`` may go on (its ``principal`` set); else the resource to answer it with (a
        refusal, a CORS preflight, or the session endpoints)."""
        # nobody yet on a server with tokens: the audit line of a refused request names no one
        request.principal = ANONYMOUS if self.tokens is None else None  # type: ignore[attr-defined]
        why = "a NUL byte" if b"\x00" in (request.uri or b"") else bad_path(request.postpath or [])
        if why is not None:
            return Refusal(400, "bad_path", f"the path holds {why}")
        answer = self._check_host(request) or self._check_origin(request) or self._authenticate(request)
        if isinstance(answer, Refusal):
            self.log.warn("refused {method} {uri} from {peer}: {why}", method=_text(request.method),
                          uri=_text(request.uri)[:200], peer=peer(request), why=answer.message)
        return answer

    def _authenticate(self, request: Request) -> resource.Resource | None:
        path = tuple(request.postpath or ())
        if path[:2] in SESSION_PATHS and len(path) == 2:
            return Session(self)
        if self.tokens is None or not path or path[0] not in GUARDED:
            return None
        principal = self.principal_of(request)
        if principal is None:
            return Refusal(401, "unauthorized", "this server needs a token: send Authorization: Bearer TOKEN "
                           "(andor.Camera(address, token=...) or $ANDOR_TOKEN), or log in from the viewer",
                           {"WWW-Authenticate": 'Bearer realm="andor"'})
        request.principal = principal  # type: ignore[attr-defined]
        method = _text(request.method)
        if not may(principal, method, tuple(_text(p) for p in path)):
            return Refusal(403, "forbidden", f"the {principal.role.value} token {principal.name!r} may not "
                           f"{method} /{'/'.join(_text(p) for p in path)[:100]}: that takes a controller token")
        return None

    def principal_of(self, request: Request) -> Principal | None:
        """Whose token ``request`` carries (Authorization: Bearer, or the viewer's cookie), if any valid."""
        if self.tokens is None:
            return ANONYMOUS
        token = None
        authorization = request.getHeader("authorization")
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                token = value.strip()
        if token is None:
            cookie = request.getCookie(COOKIE)
            token = None if cookie is None else cookie.decode("latin-1")
        return None if not token else self.tokens.current().find(token)

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


def _json(request: Request, status: int, body: object) -> bytes:
    request.setResponseCode(status)
    request.setHeader("Content-Type", "application/json")
    return json.dumps(body).encode()


def peer(request: http.Request) -> str:
    address: Any = request.getClientAddress()
    host = getattr(address, "host", None)
    return f"{host}:{address.port}" if host is not None else str(address)


def _text(value: bytes | None) -> str:
    return urllib.parse.unquote((value or b"").decode("latin-1"))


__all__ = ["Guard", "Principal", "Refusal", "Session", "TokenFile", "bad_path", "host_name", "read_tokens"]
