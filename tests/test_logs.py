"""--log-format json: one JSON object a line with every field of the event, chosen on the command line."""

import io
import json
import sys

from twisted.application import service
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, Logger, LogLevel, LogPublisher, eventFromJSON, formatEvent
from twisted.python import usage
from twisted.trial import unittest

from andor_twisted import logs, tap


class JSONFormatTests(unittest.TestCase):
    def log_to(self, out):
        return Logger(namespace="andor_twisted.acquisition.burst.Bursts",
                      observer=LogPublisher(logs.json_observer(out)))

    def test_one_object_a_line_with_every_field(self):
        """Each event is one line of JSON: its fields with their values (nested ones too), the text a person
        reads, its level and namespace; Twisted's eventFromJSON reads it back."""
        out = io.StringIO()
        log = self.log_to(out)
        summary = {"id": 3, "state": "done", "captured": 5, "plan": {"regime": "fits"}, "took_s": 0.25}
        log.info("burst {id} {state}: {captured} of {frames} frames captured", id=3, state="done", captured=5,
                 frames=5, summary=summary)
        log.warn("{who}: {method} {route} -> {value}", who="127.0.0.1:5555", method="PUT",
                 route="/api/exposure_time", value="0.02")
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        first, second = (json.loads(line) for line in lines)
        self.assertEqual(first["message"], "burst 3 done: 5 of 5 frames captured")
        self.assertEqual((first["level"], first["namespace"]), ("info", "andor_twisted.acquisition.burst.Bursts"))
        self.assertEqual(first["summary"], summary)
        self.assertIsInstance(first["log_time"], float)
        self.assertEqual((second["who"], second["route"], second["level"]),
                         ("127.0.0.1:5555", "/api/exposure_time", "warn"))
        self.assertEqual(formatEvent(eventFromJSON(lines[0])), "burst 3 done: 5 of 5 frames captured")

    def test_failure_carries_its_traceback(self):
        """A logged failure (a server bug) keeps its traceback as text."""
        out = io.StringIO()
        log = self.log_to(out)
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            log.failure("unexpected error serving {uri}", uri="/api/x")
        line = json.loads(out.getvalue())
        self.assertEqual(line["message"], "unexpected error serving /api/x")
        self.assertIn("ZeroDivisionError", line["traceback"])

    def test_unserialisable_fields(self):
        """A field JSON cannot hold (the object that logged, say) does not break the line."""
        out = io.StringIO()
        self.log_to(out).info("stopping {thing}", thing=object())
        self.assertIn("stopping <object object at", json.loads(out.getvalue())["message"])


class OptionTests(unittest.TestCase):
    def make(self, *argv):
        options = tap.Options()
        options.parseOptions([*argv, "--listen", "tcp:0:interface=127.0.0.1"])
        return tap.makeService(options, reactor=MemoryReactorClock())

    def test_json_is_twistd_application_observer(self):
        """--log-format json gives twistd's application the JSON observer, which twistd then logs to;
        the default leaves twistd's own."""
        stdout = io.StringIO()
        self.patch(sys, "stdout", stdout)
        application = service.Application("andor")
        self.make("--log-format", "json").setServiceParent(application)
        observer = application.getComponent(ILogObserver)
        observer({"log_format": "camera {name} open", "name": "neo", "log_level": LogLevel.info, "log_time": 0.0})
        self.assertEqual(json.loads(stdout.getvalue())["message"], "camera neo open")
        plain = service.Application("andor")
        self.make().setServiceParent(plain)
        self.assertIsNone(plain.getComponent(ILogObserver, None))

    def test_bad_format(self):
        """Another format is a usage error."""
        with self.assertRaises(usage.UsageError) as caught:
            tap.Options().parseOptions(["--log-format", "xml"])
        self.assertIn("--log-format must be one of text, json", str(caught.exception))
