"""The bottom layer: what the server says and decides, without Twisted, sockets or threads.

Plain values in, plain values out, in the manner of the sans-I/O core of the ``websockets`` library:
``frames`` (the frame message header of docs/streaming.md), ``burst`` (a burst's lifecycle: its states,
the transitions allowed between them and the status it reports), ``window`` (the acknowledgement window
of a burst stream), ``messages`` (the JSON control messages of the streams), ``timebase`` (camera ticks
to UTC with an uncertainty) and ``plan`` (what a burst will do, predicted before it runs). Nothing here
imports anything of the server's above it, nor Twisted; the tests drive it with values only.
"""
