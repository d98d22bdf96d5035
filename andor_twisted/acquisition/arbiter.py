"""Who has the camera. One arbiter grants it, by a declared priority, to a burst, a snap, a setting or
the live view; nothing else decides.

    purpose     priority  while someone else wants the camera
    BURST       2         waits for a snap or a setting to end; takes the camera from the live view
    SNAP        1         refused while a burst has it or waits for it; takes it from the live view;
    SETTING     1           snaps and settings share it with each other
    LIVE_VIEW   0         runs only while nobody else has the camera or waits for it; steps aside for
                          anyone, and gets the camera back by itself once it is free

A new burst discards the previous one before it asks (``acquisition.burst.Bursts``), so two bursts never
wait for each other. The driver still refuses what the camera itself cannot do at once (a second
acquisition, a setting while one runs): the arbiter is the policy above it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from twisted.internet import defer

from andor_twisted.camera.errors import AcquisitionRunning

T = TypeVar("T")


class Purpose(enum.Enum):
    """What the camera is wanted for."""

    priority: int  # a request is refused while one of higher priority has the camera or waits for it
    steps_aside: bool  # gives the camera up for anyone of higher priority, and waits instead of being refused
    doing: str  # what the holder is doing, for whom it keeps waiting ("{}": its label)

    def __new__(cls, label: str, priority: int, steps_aside: bool, doing: str) -> Purpose:
        purpose = object.__new__(cls)
        purpose._value_ = label
        purpose.priority = priority
        purpose.steps_aside = steps_aside
        purpose.doing = doing
        return purpose

    #            label       priority steps_aside doing
    LIVE_VIEW = ("live view", 0, True, "{}")
    SETTING = ("setting", 1, False, "{}")
    SNAP = ("snap", 1, False, "{}")
    BURST = ("burst", 2, False, "{} is capturing")


class Grant:
    """The camera, granted for ``purpose`` until ``release()``."""

    def __init__(self, arbiter: Arbiter, purpose: Purpose, label: str,
                 step_aside: Callable[[str], None] | None) -> None:
        self.purpose = purpose
        self.label = label  # who: "burst 3", "PUT /api/exposure_time", "live view"
        self.step_aside = step_aside  # asked to give the camera up, with the reason (for LIVE_VIEW)
        self.asked_to_step_aside = False
        self._arbiter = arbiter

    @property
    def reason(self) -> str:
        """What the holder does with the camera, as those waiting for it are told."""
        return self.purpose.doing.format(self.label)

    def release(self) -> None:
        """The holder is done with the camera (or stops waiting for it). Releasing twice does nothing."""
        self._arbiter._release(self)

    def __repr__(self) -> str:
        return f"<Grant of the camera for {self.reason}>"


class Arbiter:
    def __init__(self) -> None:
        self._holders: list[Grant] = []
        self._waiting: list[tuple[Grant, defer.Deferred[Grant]]] = []

    def request(self, purpose: Purpose, label: str,
                step_aside: Callable[[str], None] | None = None) -> defer.Deferred[Grant]:
        """The camera for ``purpose``: a Deferred firing with a ``Grant`` once the camera may be used.

        Fails at once with ``AcquisitionRunning`` (HTTP 409) if a holder of higher priority has the
        camera or waits for it, unless ``purpose`` steps aside (the live view), which then waits.
        Holders of lower priority that step aside are asked to (``step_aside(reason)``). Cancelling
        the Deferred withdraws the request."""
        grant = Grant(self, purpose, label, step_aside)
        ahead = [g for g in self._everyone() if g.purpose.priority > purpose.priority]
        if ahead and not purpose.steps_aside:
            busy = ahead[0]
            return defer.fail(AcquisitionRunning(f"{label}: the camera is busy with {busy.label}",
                                                 busy_with=busy.label))
        if self._may_start(grant, waiting_before=[]):
            self._holders.append(grant)
            return defer.succeed(grant)
        waiting: defer.Deferred[Grant] = defer.Deferred(lambda d: self._release(grant))
        self._waiting.append((grant, waiting))
        for holder in list(self._holders):
            if holder.purpose.priority < purpose.priority and holder.step_aside and not holder.asked_to_step_aside:
                holder.asked_to_step_aside = True
                holder.step_aside(grant.reason)
        return waiting

    @defer.inlineCallbacks
    def run(self, purpose: Purpose, label: str,
            operation: Callable[[], defer.Deferred[T] | T]) -> Generator[defer.Deferred[Any], Any, T]:
        """Run ``operation()`` holding the camera for ``purpose``; its result, or its failure."""
        grant = yield self.request(purpose, label)
        try:
            result: T = yield defer.maybeDeferred(operation)
            return result
        finally:
            grant.release()

    def busiest(self) -> Grant | None:
        """The holder (or else the request waiting) of the highest priority, or None if nobody wants
        the camera."""
        everyone = self._everyone()
        return max(everyone, key=lambda g: g.purpose.priority) if everyone else None

    def busy_with(self) -> str | None:
        """Who has the camera now (the holder of the highest priority), or None."""
        return max(self._holders, key=lambda g: g.purpose.priority).label if self._holders else None

    # ---- the rules ----

    def _everyone(self) -> list[Grant]:
        return self._holders + [grant for grant, _ in self._waiting]

    def _may_start(self, grant: Grant, waiting_before: list[Grant]) -> bool:
        """A purpose that steps aside starts only when nobody has the camera or waits before it; any
        other once no holder of lower priority is left (equal ones share the camera)."""
        if grant.purpose.steps_aside:
            return not self._holders and not waiting_before
        return all(h.purpose.priority >= grant.purpose.priority for h in self._holders)

    def _release(self, grant: Grant) -> None:
        if grant in self._holders:
            self._holders.remove(grant)
        else:
            self._waiting = [(g, d) for g, d in self._waiting if g is not grant]
        waiting_before: list[Grant] = []
        for waiter, d in list(self._waiting):
            if self._may_start(waiter, waiting_before):
                self._waiting.remove((waiter, d))
                self._holders.append(waiter)
                d.callback(waiter)
            else:
                waiting_before.append(waiter)
