"""Acquisitions that outlive a request, and who may have the camera: the arbiter (arbiter.py), the frames
they hand on (frames.py), bursts through the spool (burst.py, spool.py) and the live view (live.py)."""
