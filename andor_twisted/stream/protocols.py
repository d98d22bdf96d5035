"""The two frame streams' WebSocket protocols, one binary message per frame, and the resource that
serves them (docs/streaming.md).

The protocols are thin: what the messages mean is ``protocol.messages`` and ``protocol.window``, which
frames go out when is ``sender.FrameSender`` (bursts) and ``acquisition.live`` (the live view), the
framing is ``framing``, and the transport's tuning is ``gather``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.web.server import Request

from andor_twisted import gather
from andor_twisted.acquisition.burst import Burst, Bursts
from andor_twisted.acquisition.live import LiveView, Viewer
from andor_twisted.acquisition.recorder import RecordedFrames, RecordingSource, Recordings
from andor_twisted.camera.errors import CameraError
from andor_twisted.protocol import messages
from andor_twisted.protocol.access import ANONYMOUS, Principal
from andor_twisted.protocol.frames import frame_number_of
from andor_twisted.protocol.window import AckWindow, window_for
from andor_twisted.stream.framing import message_parts
from andor_twisted.stream.sender import FrameSender

MAX_INCOMING = 64 * 1024  # what a reader sends is acknowledgements and small requests
PING_INTERVAL = 5.0  # seconds between pings (autobahn's auto-ping): a vanished reader is noticed in seconds
PING_TIMEOUT = 30.0  # seconds a pong may take: the blocking client answers while it reads, behind the window
MAX_BURST_ID = 2**32 - 1  # burst ids are u32 on the wire


def _query(request: ConnectionRequest, known: tuple[str, ...], usage: str) -> dict[str, str]:
    """The handshake's query parameters: each known, given once; else a refusal (400) saying ``usage``."""
    unknown = sorted(set(request.params) - set(known))
    if unknown:
        raise ConnectionDeny(400, f"unknown query parameter {unknown[0][:40]!r}: {usage}")
    if any(len(values) != 1 for values in request.params.values()):
        raise ConnectionDeny(400, f"each query parameter once: {usage}")
    return {name: values[0] for name, values in request.params.items()}


def _whole(text: str, least: int, most: int, name: str, usage: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 10 and least <= int(text) <= most):
        raise ConnectionDeny(400, f"{name} is a whole number from {least} to {most}, not {text[:40]!r}: {usage}")
    return int(text)


class StreamProtocol(WebSocketServerProtocol):
    """What the burst and live streams share: control and status messages are JSON text; a reader that
    breaks the protocol is closed with a close code and the reason; nothing is sent after the Close."""

    events = Logger()  # not ``log``: autobahn's own logger, whose debug lines it filters
    principal: Principal = ANONYMOUS

    def connectionMade(self) -> None:
        # the site's guard has authenticated the handshake's request; its resource passes who it was, and
        # the connection's place under the site's connection caps, released when this connection ends
        self.principal = getattr(self.factory, "next_principal", ANONYMOUS)
        self.release_connection = getattr(self.factory, "next_release", None)
        super().connectionMade()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        if self.release_connection is not None:
            self.release_connection()

    def send_json(self, message: Mapping[str, object]) -> None:
        if self.state == self.STATE_OPEN:
            self.sendMessage(messages.encode(message), isBinary=False)

    def refuse(self, violation: messages.ProtocolViolation) -> None:
        self.events.warn("{peer}: closing the stream: {why}", peer=self.peer, why=violation)
        self.close(violation.close_code, str(violation))

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (the frames stop first); autobahn keeps the reason within 123 bytes."""
        if self.state == self.STATE_OPEN:
            self.sendClose(code, reason)

    def sendCloseFrame(self, code: int | None = None, reasonUtf8: bytes | None = None, isReply: bool = False) -> None:
        """Whoever starts the closing handshake, our frames stop before the Close goes out: they bypass
        autobahn's own writes, so its state alone would not stop them."""
        self.stop_sending()
        super().sendCloseFrame(code, reasonUtf8, isReply)

    def stop_sending(self) -> None:
        """Stop handing frames to the transport (each stream's own)."""


class BurstStreamProtocol(StreamProtocol):
    """``/stream/burst?id=N``: the frames of burst N, then an end or error message, then the Close."""

    burst: Burst | None = None
    sender: FrameSender | None = None
    USAGE = "the burst stream is /stream/burst?id=N, N a burst id from POST /api/burst"

    def onConnect(self, request: ConnectionRequest) -> None:
        query = _query(request, ("id",), self.USAGE)
        if "id" not in query:
            raise ConnectionDeny(400, self.USAGE)
        self.burst_id = _whole(query["id"], 1, MAX_BURST_ID, "id", self.USAGE)

    def onOpen(self) -> None:
        gather.tune(self.transport)
        bursts: Bursts = self.factory.bursts
        try:
            burst = bursts.get(self.burst_id)
        except CameraError as e:
            self.send_error(e, messages.CLOSE_GONE)
            return
        if not burst.may_read(self.principal):
            self.send_error(BurstRefused(f"burst {burst.id} belongs to {burst.owner!r}; the token "
                                         f"{self.principal.name!r} may not read it"), messages.CLOSE_FORBIDDEN)
            return
        if burst.readers:
            self.send_error(BurstRefused(f"burst {burst.id} already has a reader; one reader at a time (the other "
                                         "must close its stream first)", code="burst_has_reader"),
                            messages.CLOSE_CONFLICT)
            return
        self.burst = burst
        bursts.reader_attached(burst)
        self.events.info("{who} from {peer} reads burst {id}", who=self.principal.name, peer=self.peer, id=burst.id)
        self.source = burst.reader_source()
        self.send_frames(burst.id, burst.frames, burst.message_bytes)

    def send_frames(self, burst_id: int, frames: int, message_bytes: int) -> None:
        """Say how the frames will come, then send them from ``self.source``."""
        source = self.source
        window = AckWindow(window_for(message_bytes, source.max_window), source.acknowledged)
        self.send_json(messages.stream(burst_id, frames, window.size))
        self.sender = FrameSender(self.transport, source, self._ended, window, source.acknowledge)
        self.sender.start()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        try:
            ack = messages.parse_burst_reader(payload, isBinary)
            if self.sender is not None:
                self.sender.acknowledge(ack)
        except messages.ProtocolViolation as violation:
            self.refuse(violation)

    def _ended(self, error: BaseException | None) -> None:
        if error is None:
            self.send_json(messages.end(self.summary()))
            self.close(messages.CLOSE_NORMAL, "the end of the burst")
        else:
            gone = getattr(error, "code", None) in ("burst_discarded", "no_such_burst")
            self.send_error(error, messages.CLOSE_GONE if gone else messages.CLOSE_FAILED)

    def summary(self) -> dict[str, Any]:
        assert self.burst is not None
        return self.burst.status().to_json()

    def send_error(self, error: BaseException, close_code: int) -> None:
        """The error message, then the Close with ``close_code`` and the same message."""
        message = getattr(error, "message", str(error))
        self.send_json(messages.error(getattr(error, "code", "internal_error"), message,
                                      getattr(error, "details", {})))
        self.close(close_code, message)

    def stop_sending(self) -> None:
        if self.sender is not None:
            self.sender.stop()

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.sender is not None and self.burst is not None:
            self.sender.stop()
            self.source.return_unacknowledged()
            self.factory.bursts.reader_detached(self.burst)
            self.sender = None


class RecordingStreamProtocol(BurstStreamProtocol):
    """``/stream/recording?name=NAME``: the frames of a recording in the server's data directory, being
    written or finished, read from the disk; then an end message with its burst's status, then the Close."""

    recording: RecordingSource | None = None
    USAGE = "the recording stream is /stream/recording?name=NAME, NAME from GET /api/recordings"

    def onConnect(self, request: ConnectionRequest) -> None:
        query = _query(request, ("name",), self.USAGE)
        if "name" not in query:
            raise ConnectionDeny(400, self.USAGE)
        self.name = query["name"]

    def onOpen(self) -> None:
        gather.tune(self.transport)
        recordings: Recordings = self.factory.recordings
        recordings.open(self.name).addCallbacks(self._opened,
                                                lambda failure: self.send_error(failure.value, messages.CLOSE_GONE))

    def _opened(self, recording: RecordingSource) -> None:
        if self.state != self.STATE_OPEN:
            recording.close()
            return
        self.recording = recording
        self.events.info("{who} from {peer} reads recording {name}", who=self.principal.name, peer=self.peer,
                         name=recording.name)
        self.source = RecordedFrames(recording)
        self.send_frames(recording.burst_id, recording.frames, recording.message_bytes)

    def summary(self) -> dict[str, Any]:
        assert self.recording is not None
        return self.recording.status()

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.stop_sending()
        self.sender = None
        if self.recording is not None:
            self.recording.close()
            self.recording = None


class BurstRefused(CameraError):
    code = "burst_refused"

    def __init__(self, message: str, code: str = "burst_refused") -> None:
        super().__init__(message)
        self.code = code


class LiveStreamProtocol(StreamProtocol):
    """``/stream/live?width=W&height=H``: the newest frames, reduced to about W x H pixels."""

    viewer: Viewer | None = None
    in_flight: int | None = None  # the number of the frame sent and not yet acknowledged
    USAGE = f"the live stream is /stream/live?width=W&height=H, W and H from 1 to {messages.MAX_DISPLAY}"

    def onConnect(self, request: ConnectionRequest) -> None:
        query = _query(request, ("width", "height"), self.USAGE)
        self.display = (_whole(query.get("width", "1024"), 1, messages.MAX_DISPLAY, "width", self.USAGE),
                        _whole(query.get("height", "1024"), 1, messages.MAX_DISPLAY, "height", self.USAGE))

    def onOpen(self) -> None:
        gather.tune(self.transport)
        self.viewer = Viewer(self.send_frame, self.send_json, self.display)
        self.factory.live.add(self.viewer)

    def send_frame(self, message: bytes) -> None:
        if self.state != self.STATE_OPEN:
            return
        self.in_flight = frame_number_of(message)
        transport: Any = self.transport
        transport.writeSequence(message_parts(message))

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        try:
            message = messages.parse_viewer(payload, isBinary)
            if isinstance(message, messages.Ack) and message.frame_number != self.in_flight:
                expected = "no frame is unacknowledged" if self.in_flight is None else \
                    f"frame {self.in_flight} is the one sent"
                raise messages.ProtocolViolation(f"acknowledged frame {message.frame_number}, but {expected}")
        except messages.ProtocolViolation as violation:
            self.refuse(violation)
            return
        if self.viewer is None:
            return
        live: LiveView = self.factory.live
        if isinstance(message, messages.Ack):
            self.in_flight = None
            self.viewer.acknowledged()
        else:
            live.resize(self.viewer, (message.width, message.height))

    def stop_sending(self) -> None:
        if self.viewer is not None:
            self.factory.live.remove(self.viewer)
            self.viewer = None

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.stop_sending()


class Timer:
    """autobahn's timers (pings, handshake timeouts) as plain reactor calls, each cancelled with its
    connection. autobahn batches them into 0.2 s buckets whose reactor calls outlive every connection in
    them: a stopped server would leave them pending for up to 10 s. A few hundred connections do not
    need the batching."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock

    def call_later(self, delay: float, func: Any, *args: Any, **kwargs: Any) -> TimerCall:
        return TimerCall(self.clock.callLater(delay, func, *args, **kwargs))


class TimerCall:
    def __init__(self, call: Any) -> None:
        self.call = call

    def cancel(self) -> None:
        if self.call.active():  # autobahn may cancel a call that has fired
            self.call.cancel()


class StreamResource(WebSocketResource):
    def render(self, request: Request) -> Any:
        request.channel.setTimeout(None)  # a stream outlives HTTP's idle timeout; its own rules apply
        # who the site's guard found the request to be: the protocol built in render() takes it
        self._factory.next_principal = getattr(request, "principal", ANONYMOUS)
        self._factory.next_release = getattr(request.channel, "release", None)
        try:
            return super().render(request)
        finally:
            self._factory.next_principal = ANONYMOUS
            self._factory.next_release = None


def stream_resource(protocol: type[StreamProtocol], ping_interval: float = PING_INTERVAL,
                    ping_timeout: float = PING_TIMEOUT, clock: Any = None, **attributes: object) -> StreamResource:
    """A WebSocket resource serving ``protocol``; ``attributes`` are set on its factory. A reader that
    answers no ping for ``ping_timeout`` seconds is dropped (0: no pings). ``clock``: the reactor."""
    if clock is None:
        from twisted.internet import reactor as clock
    factory = WebSocketServerFactory()
    factory.protocol = protocol
    factory._batched_timer = Timer(clock)
    for name, value in attributes.items():
        setattr(factory, name, value)
    factory.setProtocolOptions(
        maxMessagePayloadSize=MAX_INCOMING, maxFramePayloadSize=MAX_INCOMING,
        openHandshakeTimeout=10, closeHandshakeTimeout=5,
        webStatus=False,  # a plain GET is answered 426 Upgrade Required, not autobahn's status page
        autoPingInterval=ping_interval, autoPingTimeout=ping_timeout if ping_interval else 0,
        # the site's guard checks Origin (the server's own, or --allowed-origins) before the upgrade: the
        # server's own origin depends on the Host it is asked by, which a fixed list cannot say
        allowedOrigins=["*"],
    )
    return StreamResource(factory)
