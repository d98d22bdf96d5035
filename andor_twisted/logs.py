"""``--log-format json``: the log as one JSON object a line, for log shippers (Loki, Elasticsearch, journald).

Each line is Twisted's own ``eventAsJSON`` of the event, so every field a log call names is there with
its value (a burst's whole ``summary``, ``who`` changed a setting), plus ``message`` (the text a person
reads), ``level`` and ``namespace``. ``twisted.logger.eventFromJSON`` reads a line back.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from twisted.logger import FileLogObserver, eventAsJSON, formatEvent

FORMATS = ("text", "json")


def format_json(event: dict[str, Any]) -> str:
    level = event.get("log_level")
    line = dict(event, message=formatEvent(event), level=getattr(level, "name", None),
                namespace=event.get("log_namespace"))
    for name in ("log_logger", "log_source"):  # the objects that logged: never serialisable, only noise
        line.pop(name, None)
    if "log_failure" in event:  # the traceback, as text: a log shipper cannot rebuild it from the Failure
        line["traceback"] = event["log_failure"].getTraceback()
    return eventAsJSON(line) + "\n"


def json_observer(out: IO[str] | None = None) -> FileLogObserver:
    """One JSON object a line on ``out`` (stdout)."""
    return FileLogObserver(out or sys.stdout, format_json)
