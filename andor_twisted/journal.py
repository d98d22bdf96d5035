"""``twistd --logger andor_twisted.journal.observer``: log lines for the systemd journal.

journald stamps every line itself, so twistd's timestamps are left out; a ``<N>`` prefix gives each
line its syslog priority (journald reads it from a service's stdout), so ``journalctl -p err`` works.
``--logger andor_twisted.journal.json_observer`` does the same for the JSON lines of ``--log-format json``.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from twisted.logger import FileLogObserver, LogLevel, eventAsText

from andor_twisted import logs

PRIORITY = {LogLevel.critical: 2, LogLevel.error: 3, LogLevel.warn: 4, LogLevel.info: 6, LogLevel.debug: 7}


def format_for_journal(event: dict[str, Any]) -> str | None:
    text = eventAsText(event, includeTimestamp=False)
    if not text:
        return None
    priority = PRIORITY.get(event.get("log_level"), 6)
    return "".join(f"<{priority}>{line}\n" for line in text.splitlines())


def observer(out: IO[str] | None = None) -> FileLogObserver:
    return FileLogObserver(out or sys.stdout, format_for_journal)


def format_json_for_journal(event: dict[str, Any]) -> str:
    return f"<{PRIORITY.get(event.get('log_level'), 6)}>{logs.format_json(event)}"


def json_observer(out: IO[str] | None = None) -> FileLogObserver:
    """``--logger andor_twisted.journal.json_observer``: the JSON lines of ``--log-format json``, each with
    its syslog priority for journald (which keeps the JSON as the MESSAGE)."""
    return FileLogObserver(out or sys.stdout, format_json_for_journal)
