"""Frame streams over WebSocket: bursts from the spool, the live view, and the WebSocket framing that
the stream adds to frames as it sends them (``framing``). ``sender.FrameSender`` moves burst frames
from a spool to a connection within the reader's acknowledgement window; ``protocols`` holds the two
WebSocket protocols and the resource that serves them."""
