"""A tqdm progress bar for a burst as it is read: frames read, MB/s, and how full the server's spool is.

The frames and bytes are counted here as they arrive; the spool's use is the server's (``GET /api/burst``),
asked at most once every POLL_S seconds, so a bar costs the stream nothing measurable. Shown when asked
(``progress=True``), or by default (None) when stderr is a terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

POLL_S = 1.0  # the server's status is asked for at most this often


def wanted(progress: bool | None, out: IO[str] | None = None) -> bool:
    """``progress``, or None: whether ``out`` (stderr) is a terminal."""
    if progress is None:
        return bool(getattr(out or sys.stderr, "isatty", lambda: False)())
    return progress


class BurstProgress:
    """``status()`` is the burst's status on the server (``Camera.burst_status``, for burst ``burst_id``)."""

    def __init__(self, burst_id: int, frames: int, status: Callable[[], dict[str, Any]], desc: str | None = None,
                 out: IO[str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        import tqdm  # type: ignore[import-untyped]  # (no stubs; the dev tools do not pin types-tqdm)

        self.burst_id = burst_id
        self.status = status
        self.clock = clock
        self.bar = tqdm.tqdm(total=frames, unit="frame", desc=desc or f"burst {burst_id}", file=out or sys.stderr)
        self.bytes = 0
        self.started = clock()
        self._polled = -float("inf")
        self._spool = ""  # the spool's use, as last heard from the server

    def frame(self, nbytes: int) -> None:
        """One frame of ``nbytes`` bytes read."""
        self.bytes += nbytes
        now = self.clock()
        if now - self._polled >= POLL_S:
            self._polled = now
            self._ask_server()
        self.bar.set_postfix_str(self.postfix(now), refresh=False)
        self.bar.update(1)

    def postfix(self, now: float) -> str:
        elapsed = now - self.started
        rate = f"{self.bytes / elapsed / 1e6:,.1f} MB/s" if elapsed > 0 else "- MB/s"
        return ", ".join(part for part in (rate, self._spool) if part)

    def _ask_server(self) -> None:
        try:
            status = self.status()
        except Exception:  # the bar is not worth failing a burst over
            return
        if status.get("id") == self.burst_id:
            self._spool = spool_use(status)

    def close(self, summary: dict[str, Any] | None = None) -> None:
        if summary is not None:
            self._spool = spool_use(summary)
        self.bar.set_postfix_str(self.postfix(self.clock()), refresh=False)
        self.bar.close()


def spool_use(status: dict[str, Any]) -> str:
    """"spool 12/100 (24 MB), high water 80": the server's spool, from a burst status."""
    return (f"spool {status.get('spool_frames', 0)}/{status.get('spool_capacity', 0)} "
            f"({status.get('spool_bytes', 0) / 1e6:,.0f} MB), high water {status.get('high_water_frames', 0)}")
