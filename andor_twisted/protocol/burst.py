"""A burst's lifecycle as plain values: its states, the moves allowed between them, the timing of its
frames and the status it reports. The acquisition layer feeds it events; nothing here waits or sends.

The states and the events that move a burst between them::

    ARMING ──armed──> CAPTURING ──last frame off the camera──> CAPTURED ──last frame acknowledged──> DONE
      │                   │                                        │                                │
      └─camera refused────┴─camera failed──> FAILED                │                                │
      │                   │                     │                  │                                │
      └───────────────────┴─────────────────────┴──── discarded ───┴────────────────────────────────┴──> DISCARDED

A burst is discarded by a newer burst, by ``DELETE /api/burst``, by its idle timeout or when the server
stops. While it holds the camera (ARMING, CAPTURING) settings and snaps are refused; its frames can be
read until it is DONE or DISCARDED (a FAILED burst keeps the frames captured before the failure).

Adding a state is one line in ``BurstState`` (its name, label and two flags) and its entries in
``TRANSITIONS``; ``tests/test_protocol.py`` checks that every state is reachable and has an entry.
"""

from __future__ import annotations

import array
import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

LATE: Final = 1.5  # a frame exposed more than this many frame periods after the previous one waited for room


class BurstState(enum.Enum):
    """Where a burst is in its lifecycle; ``value`` is the label the status reports."""

    holds_camera: bool  # the camera is busy with the burst: settings and snaps are refused
    readable: bool  # the burst keeps frames for a reader (so the idle timeout applies to it)

    def __new__(cls, label: str, holds_camera: bool, readable: bool) -> BurstState:
        state = object.__new__(cls)
        state._value_ = label
        state.holds_camera = holds_camera
        state.readable = readable
        return state

    #           label        holds_camera readable
    ARMING = ("arming", True, True)
    CAPTURING = ("capturing", True, True)
    CAPTURED = ("captured", False, True)
    DONE = ("done", False, False)
    FAILED = ("failed", False, True)
    DISCARDED = ("discarded", False, False)


_S = BurstState
TRANSITIONS: Final[Mapping[BurstState, frozenset[BurstState]]] = {
    _S.ARMING: frozenset({_S.CAPTURING, _S.FAILED, _S.DISCARDED}),
    _S.CAPTURING: frozenset({_S.CAPTURED, _S.FAILED, _S.DISCARDED}),
    _S.CAPTURED: frozenset({_S.DONE, _S.DISCARDED}),
    _S.DONE: frozenset({_S.DISCARDED}),
    _S.FAILED: frozenset({_S.DISCARDED}),
    _S.DISCARDED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A move the state diagram does not have: a bug in whoever asked for it."""

    def __init__(self, old: BurstState, new: BurstState) -> None:
        super().__init__(f"a burst cannot go from {old.value} to {new.value}")
        self.old, self.new = old, new


class Lifecycle:
    """One burst's state, moved only along ``TRANSITIONS``."""

    def __init__(self, state: BurstState = BurstState.ARMING) -> None:
        self._state = state

    @property
    def state(self) -> BurstState:
        return self._state

    def can(self, new: BurstState) -> bool:
        return new in TRANSITIONS[self._state]

    def to(self, new: BurstState) -> None:
        if new not in TRANSITIONS[self._state]:
            raise IllegalTransition(self._state, new)
        self._state = new


class FrameTiming:
    """What a burst's camera timestamps say, frame by frame: when each frame was exposed (in ticks), which
    were late (exposed more than ``LATE`` frame periods after the one before: the camera waited, for room
    in its memory or for its link) and by how much, and the frame rate achieved. In triggered modes the
    triggers set the pace, so no frame is called late. Without timestamps it says nothing."""

    def __init__(self, tick_frequency: int | None = None, frame_rate: float | None = None,
                 paced: bool = True) -> None:
        self.tick_frequency = tick_frequency or None
        self.period_ticks = self.tick_frequency / frame_rate if self.tick_frequency and frame_rate else None
        self.paced = paced and self.period_ticks is not None
        self.ticks = array.array("q")  # each frame's ticks, -1 where it carried none
        self.late_frames = 0
        self.max_late_s = 0.0

    @property
    def first_ticks(self) -> int | None:
        return next((t for t in self.ticks if t >= 0), None)

    @property
    def last_ticks(self) -> int | None:
        return next((t for t in reversed(self.ticks) if t >= 0), None)

    def exposed(self, ticks: int | None) -> None:
        """The next frame of the burst was exposed at ``ticks`` (None: it carries no timestamp)."""
        late = self.late_by(len(self.ticks), ticks)
        if late:
            self.late_frames += 1
            self.max_late_s = max(self.max_late_s, late)
        self.ticks.append(-1 if ticks is None else ticks)

    def late_by(self, k: int, ticks: int | None) -> float:
        """How much later than one frame period after frame k-1 frame k was exposed, in seconds, if more
        than LATE periods after it; else 0."""
        if not self.paced or ticks is None or k == 0 or self.ticks[k - 1] < 0:
            return 0.0
        assert self.period_ticks is not None and self.tick_frequency is not None
        interval = ticks - self.ticks[k - 1]
        return (interval - self.period_ticks) / self.tick_frequency if interval > LATE * self.period_ticks else 0.0

    def fps_achieved(self, frames: int) -> float | None:
        """Frames per second from the first of ``frames`` frames to the last, on the camera's clock."""
        first, last = self.first_ticks, self.last_ticks
        if first is None or last is None or last <= first or not self.tick_frequency:
            return None
        return (frames - 1) * self.tick_frequency / (last - first)


@dataclass(frozen=True)
class BurstStatus:
    """A snapshot of one burst, as ``GET /api/burst`` and the stream's end message report it."""

    id: int
    state: BurstState
    frames: int
    fps_requested: float | None
    fps: float | None  # as the camera set it, once armed
    spool_capacity: int  # frames the spool holds waiting for a reader, at most
    captured: int
    sent: int
    acknowledged: int
    spool_frames: int  # frames in the server's memory for the reader: waiting and in flight (not acknowledged)
    spool_bytes: int
    high_water_frames: int  # the most of those at once
    high_water_bytes: int
    late_frames: int  # exposed late (the camera waited: its memory was full, or its link slow)
    max_late_s: float  # the latest of them, seconds after its due time
    lost_frames: int  # never came: the burst failed (an overflow, the camera stopped) before them
    took_s: float | None
    fps_achieved: float | None
    readers: int
    trigger_mode: str
    waiting_for_trigger: bool  # capturing, and the camera waits for a trigger for the next frame
    error: str | None  # the error's code
    message: str | None  # and its message
    timebase: Mapping[str, object] | None = None  # how its ticks map to UTC (docs/timing.md)
    time_uncertainty_s: float | None = None  # the largest uncertainty of any of its frames' UTC times
    plan: Mapping[str, object] | None = None  # what the server predicted before capture (protocol.plan)
    settings: Mapping[str, object] | None = None  # the camera and its settings as the burst armed
    recording: str | None = None  # the recording it is written to, in the server's data directory
    bytes_sent: int = 0  # frame messages' bytes written to readers (a frame sent again counting again)
    owner: str | None = None  # the name of the token that started it ("local" on a server without tokens)

    def to_json(self) -> dict[str, object]:
        """The status as a JSON object, the state as its label (docs/streaming.md)."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        values["state"] = self.state.value
        return values
