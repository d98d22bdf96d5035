"""The two frame streams' WebSocket protocols, one binary message per frame, and the resource that
serves them (docs/streaming.md).

The protocols are thin: what the messages mean is ``protocol.messages`` and ``protocol.window``, which
frames go out when is ``sender.FrameSender`` (bursts) and ``acquisition.live`` (the live view), the
framing is ``framing``, and the transport's tuning is ``gather``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.web.server import Request

from andor_twisted import gather
from andor_twisted.acquisition.burst import Burst, Bursts, NoSuchBurst
from andor_twisted.acquisition.live import LiveView, Viewer
from andor_twisted.acquisition.recorder import RecordedFrames, RecordingSource, Recordings
from andor_twisted.camera.errors import CameraError
from andor_twisted.protocol import messages
from andor_twisted.protocol.window import AckWindow, window_for
from andor_twisted.stream.framing import message_parts
from andor_twisted.stream.sender import FrameSender

MAX_INCOMING = 64 * 1024  # what a reader sends is acknowledgements and small requests


class StreamProtocol(WebSocketServerProtocol):
    """What the burst and live streams share: control and status messages are JSON text, and a reader
    that breaks the protocol is closed with the reason."""

    def send_json(self, message: Mapping[str, object]) -> None:
        self.sendMessage(messages.encode(message), isBinary=False)

    def refuse(self, violation: messages.ProtocolViolation) -> None:
        self.sendClose(violation.close_code, str(violation))


class BurstStreamProtocol(StreamProtocol):
    """``/stream/burst?id=N``: the frames of burst N, then an end or error message."""

    burst: Burst | None
    sender: FrameSender | None

    def onConnect(self, request: ConnectionRequest) -> None:
        try:
            self.burst_id = int(request.params["id"][0])
        except (KeyError, IndexError, ValueError):
            raise ConnectionDeny(400, "the burst stream is /stream/burst?id=N, N a burst id from POST /api/burst") \
                from None
        self.burst = self.sender = None

    def onOpen(self) -> None:
        gather.tune(self.transport)
        bursts: Bursts = self.factory.bursts
        try:
            burst = bursts.get(self.burst_id)
            if burst.readers:
                raise NoSuchBurst(f"burst {burst.id} already has a reader; one reader at a time")
        except CameraError as e:
            self.send_error(e)
            return
        self.burst = burst
        bursts.reader_attached(burst)
        self.source = burst.reader_source()
        self.send_frames(burst.id, burst.frames, burst.message_bytes)

    def send_frames(self, burst_id: int, frames: int, message_bytes: int) -> None:
        """Say how the frames will come, then send them from ``self.source``."""
        source = self.source
        window = AckWindow(window_for(message_bytes, source.capacity), source.acknowledged)
        self.send_json(messages.stream(burst_id, frames, window.size))
        self.sender = FrameSender(self.transport, source, self._ended, window, source.acknowledge)
        self.sender.start()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        try:
            ack = messages.parse_burst_reader(payload)
            if self.sender is not None:
                self.sender.acknowledge(ack)
        except messages.ProtocolViolation as violation:
            self.refuse(violation)

    def _ended(self, error: BaseException | None) -> None:
        if error is None:
            self.send_json(messages.end(self.summary()))
        else:
            self.send_error(error)

    def summary(self) -> dict[str, Any]:
        assert self.burst is not None
        return self.burst.status().to_json()

    def send_error(self, error: BaseException) -> None:
        self.send_json(messages.error(getattr(error, "code", "internal_error"), getattr(error, "message", str(error)),
                                      getattr(error, "details", {})))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.sender is not None and self.burst is not None:
            self.sender.stop()
            self.source.return_unacknowledged()
            self.factory.bursts.reader_detached(self.burst)
            self.sender = None


class RecordingStreamProtocol(BurstStreamProtocol):
    """``/stream/recording?name=NAME``: the frames of a recording in the server's data directory, being
    written or finished, read from the disk; then an end message with its burst's status."""

    recording: RecordingSource | None = None

    def onConnect(self, request: ConnectionRequest) -> None:
        try:
            self.name = request.params["name"][0]
        except (KeyError, IndexError):
            raise ConnectionDeny(400, "the recording stream is /stream/recording?name=NAME, NAME from "
                                      "GET /api/recordings") from None
        self.burst = self.sender = None

    def onOpen(self) -> None:
        gather.tune(self.transport)
        recordings: Recordings = self.factory.recordings
        recordings.open(self.name).addCallbacks(self._opened, lambda failure: self.send_error(failure.value))

    def _opened(self, recording: RecordingSource) -> None:
        if self.state != self.STATE_OPEN:
            return
        self.recording = recording
        self.source = RecordedFrames(recording)
        self.send_frames(recording.burst_id, recording.frames, recording.message_bytes)

    def summary(self) -> dict[str, Any]:
        assert self.recording is not None
        return self.recording.status()

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.sender is not None:
            self.sender.stop()
            self.sender = None
        if self.recording is not None:
            self.recording.close()
            self.recording = None


class LiveStreamProtocol(StreamProtocol):
    """``/stream/live?width=W&height=H``: the newest frames, reduced to about W x H pixels."""

    viewer: Viewer | None

    def onConnect(self, request: ConnectionRequest) -> None:
        try:
            self.display = (int(request.params["width"][0]), int(request.params["height"][0]))
        except (KeyError, IndexError, ValueError):
            self.display = (1024, 1024)
        self.viewer = None

    def onOpen(self) -> None:
        gather.tune(self.transport)
        self.viewer = Viewer(self.send_frame, self.send_json, self.display)
        self.factory.live.add(self.viewer)

    def send_frame(self, message: bytes) -> None:
        transport: Any = self.transport
        transport.writeSequence(message_parts(message))

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        try:
            message = messages.parse_viewer(payload)
        except messages.ProtocolViolation as violation:
            self.refuse(violation)
            return
        if self.viewer is None:
            return
        live: LiveView = self.factory.live
        if isinstance(message, messages.Ack):
            self.viewer.acknowledged()
        else:
            live.resize(self.viewer, (message.width, message.height))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.viewer is not None:
            self.factory.live.remove(self.viewer)
            self.viewer = None


class StreamResource(WebSocketResource):
    def render(self, request: Request) -> Any:
        request.channel.setTimeout(None)  # a stream outlives HTTP's idle timeout; its own rules apply
        return super().render(request)


def stream_resource(protocol: type[StreamProtocol], **attributes: object) -> StreamResource:
    """A WebSocket resource serving ``protocol``; ``attributes`` are set on its factory."""
    factory = WebSocketServerFactory()
    factory.protocol = protocol
    for name, value in attributes.items():
        setattr(factory, name, value)
    factory.setProtocolOptions(
        maxMessagePayloadSize=MAX_INCOMING, maxFramePayloadSize=MAX_INCOMING,
        openHandshakeTimeout=10,
        autoPingInterval=0,  # the blocking client answers pings only while its user iterates
        allowedOrigins=["*"],  # frames are readable by anyone on the lab network, as the HTTP API is
    )
    return StreamResource(factory)
