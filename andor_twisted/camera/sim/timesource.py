"""Where the simulated camera gets its time: the system's monotonic clock, or a test's task.Clock."""

import time


class SystemTime:
    """Real time: ``wait_buffer`` really sleeps, in the SDK thread, as the real SDK blocks."""

    def now(self):
        return time.monotonic()

    def sleep(self, seconds):
        if seconds > 0:
            time.sleep(seconds)


class ClockTime:
    """Time from a ``twisted.internet.task.Clock``: sleeping advances the clock, so a test that calls
    ``wait_buffer`` sees exactly the frames the physics delivers by then, without real waiting."""

    def __init__(self, clock):
        self.clock = clock

    def now(self):
        return self.clock.seconds()

    def sleep(self, seconds):
        if seconds > 0:
            self.clock.advance(seconds)
