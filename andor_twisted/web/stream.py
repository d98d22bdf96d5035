"""Frame streams over WebSocket: bursts from the spool and the live view, one binary message per frame.

Flow control is the reader's acknowledgements: never more than a window of unacknowledged frames is
sent. Beneath that the transport gets frames only once it has sent what it had (``FrameSender`` is a
pull producer), so a slow reader slows only the spool's drain. Autobahn does the handshake, control
frames and incoming messages; burst frames arrive here ready-made (``wire.frame_parts``, built in the
SDK thread) and go out with gathering sends straight from the camera's buffers (``GatherWriter``).
"""

import collections
import errno
import json

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer, main, tcp
from twisted.internet.interfaces import IPullProducer
from zope.interface import implementer

from andor_twisted.acquisition.burst import NoSuchBurst
from andor_twisted.acquisition.live import Viewer
from andor_twisted.camera.errors import CameraError

WINDOW_FRAMES = 32  # at most this many unacknowledged frames ...
WINDOW_BYTES = 32 * 1024 * 1024  # ... and bytes (but always at least one frame)
# bytes per send(). Twisted's 128 KiB takes 85 reactor passes per full frame; but once less than this is
# left of a frame, Twisted copies what is left (abstract.FileDescriptor.doWrite), so not much more.
SEND_LIMIT = 1024 * 1024
BATCH_BYTES = 4 * 1024 * 1024  # frames already spooled go to the transport together, up to this (or one frame)
MAX_INCOMING = 64 * 1024  # what a reader sends is acknowledgements and small requests


def window_for(message_bytes):
    """How many frames of this size may be unacknowledged."""
    return max(1, min(WINDOW_FRAMES, WINDOW_BYTES // message_bytes))


@implementer(IPullProducer)
class FrameSender:
    """Moves frames from a spool to a transport within the acknowledgement window: each time the
    transport has sent everything, the frames spooled by then (up to BATCH_BYTES) in one write, since
    a write and a reactor pass per frame cost more than a small frame.

    ``on_end(error)`` is called once the spool has no more frames: with None after the last frame of
    a finished burst, or with the exception that ended it.
    """

    def __init__(self, transport, spool, on_end, window):
        self.transport = transport
        self.write = frame_writer(transport)
        self.spool = spool
        self.on_end = on_end
        self.window = window
        self._transport_ready = False
        self._waiting = None  # spool.next() not yet fired
        self._done = False

    def start(self):
        self.transport.registerProducer(self, False)  # a pull producer: asked for data at once

    def resumeProducing(self):
        """The transport has sent everything it had."""
        self._transport_ready = True
        self.pump()

    def stopProducing(self):
        self.stop()

    def stop(self):
        self._done = True
        if self._waiting is not None:
            self._waiting.cancel()

    def pump(self):
        """If the transport is idle and the window has room: send the frames spooled, or wait for one."""
        if self._done or self._waiting is not None or not self._transport_ready:
            return
        room = self.window - self.spool.in_flight
        if room <= 0:
            return
        frames = self.spool.take(room, BATCH_BYTES)
        if frames:
            self._send(frames)
            return
        self._waiting = self.spool.next()
        self._waiting.addCallbacks(self._next, self._failed)

    def _next(self, frame):
        self._waiting = None
        if frame is None:
            self._end(None)
        else:
            self._send([frame])

    def _send(self, frames):
        self._transport_ready = False
        self.write([part for frame in frames for part in frame.message])

    def _failed(self, failure):
        self._waiting = None
        if not failure.check(defer.CancelledError):
            self._end(failure.value)

    def _end(self, error):
        self._done = True
        self.on_end(error)


class StreamProtocol(WebSocketServerProtocol):
    """What the burst and live streams share: control and status messages are JSON text."""

    def send_json(self, message):
        self.sendMessage(json.dumps(message, default=str).encode(), isBinary=False)


class BurstStreamProtocol(StreamProtocol):
    """``/stream/burst?id=N``: the frames of burst N, then an end or error message."""

    def onConnect(self, request):
        try:
            self.burst_id = int(request.params["id"][0])
        except (KeyError, IndexError, ValueError):
            raise ConnectionDeny(400, "the burst stream is /stream/burst?id=N, N a burst id from POST /api/burst")
        self.burst = self.sender = None

    def onOpen(self):
        tune(self.transport)
        bursts = self.factory.bursts
        try:
            burst = bursts.get(self.burst_id)
            if burst.readers:
                raise NoSuchBurst(f"burst {burst.id} already has a reader; one reader at a time")
        except CameraError as e:
            self.send_error(e)
            return
        self.burst = burst
        bursts.reader_attached(burst)
        window = min(window_for(burst.message_bytes), burst.spool.capacity)
        self.send_json({"type": "stream", "burst": burst.id, "frames": burst.frames, "window": window})
        self.sender = FrameSender(self.transport, burst.spool, self._ended, window)
        self.sender.start()

    def onMessage(self, payload, isBinary):
        try:
            ack = json.loads(payload)["ack"]
            if not isinstance(ack, int) or isinstance(ack, bool):
                raise ValueError(ack)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            self.sendClose(1003, 'a reader sends {"ack": frame_number}')
            return
        if self.sender is not None:
            self.burst.spool.acknowledge(ack)
            self.sender.pump()

    def _ended(self, error):
        if error is None:
            self.send_json({"type": "end", "summary": self.burst.status()})
        else:
            self.send_error(error)

    def send_error(self, error):
        code = getattr(error, "code", "internal_error")
        self.send_json({"type": "error", "error": code, "message": getattr(error, "message", str(error)),
                        **getattr(error, "details", {})})

    def onClose(self, wasClean, code, reason):
        if self.sender is not None:
            self.sender.stop()
            self.burst.spool.return_unacknowledged()
            self.factory.bursts.reader_detached(self.burst)
            self.sender = None


class LiveStreamProtocol(StreamProtocol):
    """``/stream/live?width=W&height=H``: the newest frames, reduced to about W x H pixels."""

    def onConnect(self, request):
        try:
            self.display = tuple(int(request.params[name][0]) for name in ("width", "height"))
        except (KeyError, IndexError, ValueError):
            self.display = (1024, 1024)
        self.viewer = None

    def onOpen(self):
        tune(self.transport)
        self.viewer = Viewer(self.transport.write, self.send_json, self.display)
        self.factory.live.add(self.viewer)

    def onMessage(self, payload, isBinary):
        try:
            message = json.loads(payload)
            if "ack" in message:
                self.viewer.acknowledged()
            elif "display" in message:
                width, height = (int(n) for n in message["display"])
                self.factory.live.resize(self.viewer, (width, height))
            else:
                raise ValueError(message)
        except (ValueError, TypeError, UnicodeDecodeError):
            self.sendClose(1003, 'a viewer sends {"ack": frame_number} or {"display": [width, height]}')

    def onClose(self, wasClean, code, reason):
        if self.viewer is not None:
            self.factory.live.remove(self.viewer)
            self.viewer = None


def tune(transport):
    """TCP_NODELAY (an acknowledgement held back by Nagle's algorithm stalls the stream for a delayed
    ACK: autobahn's own attempt happens before its options are set) and a large per-send limit."""
    transport.setTcpNoDelay(True)
    transport.SEND_LIMIT = SEND_LIMIT
    transport.unregisterProducer()  # twisted.web's channel, which handed this connection over


def frame_writer(transport):
    """How to write frames' parts to ``transport``: gathered from where they are on a TCP connection
    (see ``GatherWriter``), else joined into one bytes object for ``transport.write()``."""
    if isinstance(transport, tcp.Connection) and hasattr(transport, "_tempDataLen"):
        return GatherWriter(transport).write
    return lambda parts: transport.write(b"".join(parts))


class GatherWriter:
    """Sends frames' parts with one ``sendmsg()`` from where they are (the pixels in the camera's
    buffers), where ``transport.write()`` takes only one bytes object: joining an 11 MB frame costs
    more than sending it, and Twisted then copies the last MiB of it again (FileDescriptor.doWrite).

    It stands in front of the transport's own ``doWrite``, which still sends everything else
    (autobahn's messages) after the parts, and keeps its producer and close handling. A frame
    written while the transport's own buffer holds earlier bytes joins that buffer instead, so
    messages always leave in the order they were written. (Reading that buffer relies on Twisted's
    FileDescriptor internals; tests.test_stream pins the behaviour.)
    """

    def __init__(self, transport):
        self.transport = transport
        self._parts = collections.deque()  # unsent bytes and byte memoryviews, in order
        self._transport_do_write = transport.doWrite
        transport.doWrite = self.doWrite

    def write(self, parts):
        transport = self.transport
        if len(transport.dataBuffer) > transport.offset or transport._tempDataLen:
            transport.write(b"".join(parts))
            return
        self._parts.extend(parts)
        transport.startWriting()

    def doWrite(self):
        """The socket is writable: our parts first, then whatever the transport holds."""
        while self._parts:
            try:
                sent = self.transport.socket.sendmsg(self._parts)
            except BlockingIOError:
                return None
            except OSError as e:
                return None if e.errno == errno.ENOBUFS else main.CONNECTION_LOST
            while sent:
                part = self._parts[0]
                if sent < len(part):
                    self._parts[0] = memoryview(part)[sent:]
                    return None  # the socket is full: wait until it is writable again
                sent -= len(part)
                self._parts.popleft()
        return self._transport_do_write()


class StreamResource(WebSocketResource):
    def render(self, request):
        request.channel.setTimeout(None)  # a stream outlives HTTP's idle timeout; its own rules apply
        return super().render(request)


def stream_resource(protocol, **attributes):
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
