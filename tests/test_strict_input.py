"""Strict input on a real loopback server: every hostile or malformed request gets a 4xx JSON error naming
what is wrong, never a 500 or a traceback, and the server keeps working after each (issue 11)."""

import json

from twisted.internet import defer, threads
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial import unittest

from andor_twisted.protocol import strictjson
from andor_twisted.web import inputs
from tests.helpers import LoopbackServer

JSON = {"Content-Type": "application/json"}
DEEP = b'{"value": ' + b"[" * 5000 + b"]" * 5000 + b"}"

# method, path, body (bytes are sent as they are), headers, status, error code, words in the message
HOSTILE = [
    ("PUT", "/api/exposure_time", DEEP, JSON, 400, "too_deep", ["16 levels"]),
    ("PUT", "/api/exposure_time", b'{"value": 1' + b"0" * 400 + b"}", JSON, 400, "out_of_range", ["digits"]),
    ("PUT", "/api/exposure_time", b'{"value": 1e999}', JSON, 400, "out_of_range", ["too large"]),
    ("PUT", "/api/exposure_time", b'{"value": NaN}', JSON, 400, "malformed_json", ["NaN"]),
    ("PUT", "/api/exposure_time", b'{"value": Infinity}', JSON, 400, "malformed_json", ["Infinity"]),
    ("PUT", "/api/exposure_time", b'{"value": 0.1, "also": 1}', JSON, 400, "unknown_field", ["'also'"]),
    ("PUT", "/api/exposure_time", b"", JSON, 400, "missing_value", ["JSON body"]),
    ("PUT", "/api/exposure_time", b'{"value": 0.02}', {"Content-Type": "text/plain"}, 415,
     "unsupported_media_type", ["application/json", "'text/plain'"]),
    ("PUT", "/api/exposure_time", b'{"value": 0.02}', {}, 415, "unsupported_media_type", ["application/json"]),
    ("POST", "/api/burst", b'{"value": {"frames": 10}}', {"Content-Type": "text/plain;charset=UTF-8"}, 415,
     "unsupported_media_type", ["text/plain"]),
    ("POST", "/api/burst", {"value": {"frames": 10 ** 12, "fps": 10}}, None, 400, "over_limit",
     ["--max-burst-bytes", "bytes"]),
    ("POST", "/api/burst", {"value": {"frames": 10 ** 4, "fps": 1}}, None, 400, "over_limit",
     ["--max-burst-seconds", "3600"]),
    ("POST", "/api/burst", {"value": {"frames": 2 ** 70}}, None, 400, "out_of_range", ["digits"]),
    ("GET", "/api/snap?exposure=0.5", None, None, 400, "unknown_parameter", ["'exposure'", "format, exposure_time"]),
    ("GET", "/api/temperature?verbose=1", None, None, 400, "unknown_parameter", ["takes none"]),
    ("GET", "/api/snap?format=raw&format=tiff", None, None, 400, "repeated_parameter", ["2 times"]),
    ("GET", "/api/snap?exposure_time=inf", None, None, 400, "out_of_range", ["at most"]),
    ("GET", "/api/snap?exposure_time=nan", None, None, 400, "out_of_range", ["at most"]),
    ("GET", "/api/snap?exposure_time=1e999", None, None, 400, "out_of_range", ["at most"]),
    ("GET", "/api/snap?exposure_time=-1", None, None, 400, "out_of_range", ["above 0"]),
    ("GET", "/static/%00", None, None, 400, "bad_path", ["NUL"]),
    ("GET", "/static/..%2f..%2fpyproject.toml", None, None, 400, "bad_path", ["slash"]),
    ("GET", "/static/%2e%2e/api.py", None, None, 400, "bad_path", ["'..'"]),
    ("GET", "/static/../web/api.py", None, None, 400, "bad_path", ["'..'"]),
    ("GET", "/static/..%5capi.py", None, None, 400, "bad_path", ["backslash"]),
]


class StrictInputTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.server = LoopbackServer()
        yield self.server.start("--max-burst-seconds", "3600", "--max-burst-bytes", "1TB")

    def tearDown(self):
        return self.server.stop()

    @defer.inlineCallbacks
    def test_hostile_table(self):
        """Each hostile request: its 4xx, a JSON body naming the problem, nothing worse than a warning in
        the log, no burst started, and the server still answers."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        for method, path, body, headers, status, code, words in HOSTILE:
            got, kind, answer = yield threads.deferToThread(self.server.raw, method, path, body, headers)
            case = f"{method} {path} {body!r:.60}"
            self.assertEqual((got, kind), (status, "application/json"), f"{case}: {answer!r:.300}")
            self.assertEqual(answer["error"], code, case)
            for word in words:
                self.assertIn(word, answer["message"], case)
            alive, _, _ = yield threads.deferToThread(self.server.raw, "GET", "/api/temperature")
            self.assertEqual(alive, 200, f"after {case}")
        self.assertEqual([e for e in events if e["log_level"] >= LogLevel.error], [])
        self.assertIsNone(self.server.bursts.current)

    @defer.inlineCallbacks
    def test_limit_names_itself(self):
        """A burst over a limit is refused with the limit in its details; one within it starts."""
        status, _, answer = yield threads.deferToThread(
            self.server.raw, "POST", "/api/burst", {"value": {"frames": 10 ** 4, "fps": 1}})
        self.assertEqual((status, answer["limit_seconds"]), (400, 3600.0))
        status, _, answer = yield threads.deferToThread(
            self.server.raw, "POST", "/api/burst", {"value": {"frames": 3, "fps": 10}})
        self.assertEqual(status, 200, answer)

    @defer.inlineCallbacks
    def test_static_files_still_served(self):
        """The viewer's files are still there after the path checks."""
        status, kind, body = yield threads.deferToThread(self.server.raw, "GET", "/static/api.js")
        self.assertEqual((status, kind), (200, "text/javascript"))
        self.assertIn(b"export", body)


class ParsingTests(unittest.TestCase):
    def test_depth(self):
        """Depth counts brackets outside strings only."""
        self.assertEqual(strictjson.depth(b'{"a": [1, {"b": "[[[\\"[["}]}'), 3)
        self.assertEqual(strictjson.depth(b"1"), 0)

    def test_loads_bounds(self):
        """Integers of 18 digits pass, 19 do not; non-finite floats and constants never do."""
        self.assertEqual(inputs.loads(b"[-999999999999999999]"), [-999999999999999999])
        for raw in (b"1000000000000000000", b"1e400", b"-Infinity", b"NaN", b"[" * 17 + b"]" * 17):
            with self.assertRaises(inputs.InputError, msg=raw):
                inputs.loads(raw)
        self.assertEqual(inputs.loads(json.dumps([[0.5]] * 3).encode()), [[0.5]] * 3)
