"""``twistd --logger andor_twisted.journal.observer``: plain log lines for the systemd journal.

journald stamps every line itself, so twistd's own timestamps would only be repeated.
"""

import sys

from twisted.logger import textFileLogObserver


def observer():
    return textFileLogObserver(sys.stdout, timeFormat=None)
