"""``twistd --logger andor_twisted.journal.observer``: log lines for the systemd journal.

journald stamps every line itself, so twistd's timestamps are left out; a ``<N>`` prefix gives each
line its syslog priority (journald reads it from a service's stdout), so ``journalctl -p err`` works.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from twisted.logger import FileLogObserver, LogLevel, eventAsText

PRIORITY = {LogLevel.critical: 2, LogLevel.error: 3, LogLevel.warn: 4, LogLevel.info: 6, LogLevel.debug: 7}


def format_for_journal(event: dict[str, Any]) -> str | None:
    text = eventAsText(event, includeTimestamp=False)
    if not text:
        return None
    priority = PRIORITY.get(event.get("log_level"), 6)
    return "".join(f"<{priority}>{line}\n" for line in text.splitlines())


def observer(out: IO[str] | None = None) -> FileLogObserver:
    return FileLogObserver(out or sys.stdout, format_for_journal)
