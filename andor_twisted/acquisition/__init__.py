"""Acquisitions that outlive a request: bursts through the spool (and the live view)."""
