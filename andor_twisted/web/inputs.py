"""What a request to /api may carry, checked before anything acts on it.

Why a module of its own: Python's ``json`` parses anything a client sends into values the rest of the
server then converts (``float(10**400)`` raises OverflowError, a document nested thousands of levels
deep raises RecursionError): each would end as a 500 and a traceback. Here a body is parsed only once
its nesting depth is known to be small, numbers are bounded while they are still text, and a body that
is not declared ``application/json`` (a cross-site form's ``text/plain``) is refused. Every refusal is
an ``InputError`` with the status and a message naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from andor_twisted.protocol import strictjson

JSON_TYPES = ("application/json",)


class InputError(ValueError):
    """A request the API refuses before acting on it: ``status`` (4xx), ``code``, message, details."""

    def __init__(self, status: int, code: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def loads(raw: bytes) -> Any:
    """JSON from a request body, within ``protocol.strictjson``'s bounds; else an InputError (400)."""
    try:
        return strictjson.loads(raw)
    except strictjson.StrictJSONError as e:
        message = str(e) if e.code != "malformed_json" else f"the request body is {e}"
        raise InputError(400, e.code, message) from None


def check_content_type(content_type: str | None, has_body: bool) -> None:
    """A body must be declared JSON: a cross-site form can send text/plain, urlencoded or multipart
    without asking, but not application/json."""
    if content_type is None:
        if has_body:
            raise InputError(415, "unsupported_media_type", "a request body must be sent as "
                             "Content-Type: application/json")
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in JSON_TYPES:
        raise InputError(415, "unsupported_media_type", f"request bodies are application/json, not {media!r}",
                         accepts=list(JSON_TYPES))


def check_query(path: str, args: Mapping[bytes, Sequence[bytes]], known: Sequence[str]) -> dict[str, str]:
    """The query parameters as text: each one known to the endpoint, and given once."""
    query = {}
    for raw_name, values in args.items():
        name = raw_name.decode("utf-8", "replace")
        if name not in known:
            takes = f"it takes {', '.join(known)}" if known else "it takes none"
            raise InputError(400, "unknown_parameter", f"{path} has no query parameter {name!r}; {takes}",
                             known=list(known))
        if len(values) != 1:
            raise InputError(400, "repeated_parameter", f"the query parameter {name!r} is given {len(values)} times")
        try:
            query[name] = values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(400, "malformed_parameter", f"the query parameter {name!r} is not UTF-8") from None
    return query


def seconds(name: str, text: str, most: float) -> float:
    """A positive, finite number of seconds from query text, at most ``most``."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(400, "wrong_type", f"{name} is a number of seconds, not {text[:40]!r}") from None
    if not 0 < value <= most:
        raise InputError(400, "out_of_range", f"{name} is a number of seconds above 0 and at most {most:g}, "
                         f"not {text[:40]}", min=0, max=most)
    return value


def boolean(name: str, text: str) -> bool:
    if text not in ("true", "false"):
        raise InputError(400, "wrong_type", f"{name} is true or false, not {text[:40]!r}")
    return text == "true"
