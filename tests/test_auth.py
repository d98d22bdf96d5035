"""Tokens: the server needs them beyond loopback; controllers drive, viewers watch; the browser logs in
once into an HttpOnly SameSite=Strict cookie; bursts belong to who started them; an audit trail of who
changed what (issue 11)."""

import http.client
import json
import os
import struct

import websocket
from twisted.internet import defer, threads
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python import usage
from twisted.trial import unittest

import andor
from andor_twisted import tap
from andor_twisted.protocol.access import Principal, Role, TokenFileError, Tokens, may
from andor_twisted.web.guard import TokenFile
from tests.helpers import LoopbackServer

ALICE = "alice-controller-token-0123456789"
BOB = "bob-controller-token-0123456789ab"
VIC = "vic-viewer-token-0123456789abcdef"
VAL = "val-viewer-token-0123456789abcdef"
TOKENS = f"""# name role token
alice controller {ALICE}
bob controller {BOB}
vic viewer {VIC}   # the microscope's screen
val viewer {VAL}
"""


def write_tokens(path, text=TOKENS, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


class TokensTests(unittest.TestCase):
    def test_parse_and_find(self):
        """Lines 'name role token' with comments; a token finds its principal, anything else nothing."""
        tokens = Tokens.parse(TOKENS)
        self.assertEqual(len(tokens), 4)
        self.assertEqual(tokens.find(ALICE), Principal("alice", Role.CONTROLLER))
        self.assertEqual(tokens.find(VIC.encode()), Principal("vic", Role.VIEWER))
        for wrong in ("", ALICE[:-1], ALICE + "x", "é" * 40):
            self.assertIsNone(tokens.find(wrong), wrong)

    def test_bad_files(self):
        """Short tokens, unknown roles, repeated names or tokens, wrong field counts and empty files are refused
        naming the line."""
        for text, words in (("a controller short", "shorter"), (f"a admin {ALICE}", "controller or viewer"),
                            (f"a controller {ALICE}\na viewer {VIC}", "twice"),
                            (f"a controller {ALICE}\nb viewer {ALICE}", "twice"), ("a b", "line 1"),
                            ("# nothing", "no token")):
            with self.assertRaises(TokenFileError, msg=text) as caught:
                Tokens.parse(text)
            self.assertIn(words, str(caught.exception))

    def test_permissions(self):
        """A controller may do anything; a viewer reads, but takes no snap and changes nothing."""
        viewer = Principal("v", Role.VIEWER)
        self.assertTrue(may(viewer, "GET", ("api", "temperature")))
        self.assertTrue(may(viewer, "GET", ("stream", "live")))
        self.assertFalse(may(viewer, "GET", ("api", "snap")))
        self.assertFalse(may(viewer, "PUT", ("api", "exposure_time")))
        self.assertFalse(may(viewer, "POST", ("api", "burst")))
        self.assertTrue(may(Principal("c", Role.CONTROLLER), "DELETE", ("api", "burst")))

    def test_rotation(self):
        """A changed token file is read again (at most once a second); an unusable one keeps the old tokens."""
        path = write_tokens(self.mktemp())
        now = [0.0]
        source = TokenFile(path, lambda: now[0])
        write_tokens(path, f"alice controller {BOB}\n")
        os.utime(path, (1, 1))
        self.assertIsNotNone(source.current().find(ALICE))  # not looked at yet
        now[0] = 1.0
        self.assertIsNone(source.current().find(ALICE))
        self.assertEqual(source.current().find(BOB).name, "alice")
        os.chmod(path, 0o644)
        os.utime(path, (2, 2))
        now[0] = 2.0
        self.assertEqual(source.current().find(BOB).name, "alice")


class OptionsTests(unittest.TestCase):
    def parse(self, *args):
        options = tap.Options()
        options.parseOptions(list(args))
        return options

    def test_exposed_needs_tokens(self):
        """Listening beyond loopback without tokens refuses to start, saying what to do."""
        for endpoint in ("tcp:8000", "tcp:8000:interface=0.0.0.0", "systemd:domain=INET:index=0"):
            with self.assertRaises(usage.UsageError) as caught:
                self.parse("--listen", endpoint)
            self.assertIn("--tokens", str(caught.exception))
        self.parse("--listen", "tcp:8000", "--tokens", write_tokens(self.mktemp()))
        self.parse()  # loopback by default: no tokens needed

    def test_token_file_mode(self):
        """A token file others can read is refused, saying chmod 600; so is a bad line."""
        with self.assertRaises(usage.UsageError) as caught:
            self.parse("--tokens", write_tokens(self.mktemp(), mode=0o644))
        self.assertIn("chmod 600", str(caught.exception))
        with self.assertRaises(usage.UsageError) as caught:
            self.parse("--tokens", write_tokens(self.mktemp(), "alice boss " + ALICE))
        self.assertIn("line 1", str(caught.exception))
        self.assertRaises(usage.UsageError, self.parse, "--tokens", "/nonexistent/tokens")


class AuthTestCase(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.server = LoopbackServer()
        yield self.server.start("--tokens", write_tokens(self.mktemp()))
        self.address = self.server.address

    def tearDown(self):
        return self.server.stop()

    def raw(self, method, path, body=None, token=None, **headers):
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        return threads.deferToThread(self.server.raw, method, path, body, headers)

    def camera(self, token):
        cam = andor.Camera(self.address, token=token)
        self.addCleanup(cam.close)
        return cam


class AuthTests(AuthTestCase):
    @defer.inlineCallbacks
    def test_token_needed(self):
        """Without a valid token the API and the streams answer 401 saying how to send one; the viewer's
        page itself loads (it asks for the token)."""
        for token in (None, "not-a-token-at-all-0123456789", ALICE + "x"):
            status, _, answer = yield self.raw("GET", "/api/temperature", token=token)
            self.assertEqual((status, answer["error"]), (401, "unauthorized"))
            self.assertIn("Authorization: Bearer", answer["message"])
        status, _, _ = yield self.raw("GET", "/")
        self.assertEqual(status, 200)

        def handshake(headers):
            try:
                websocket.create_connection(f"ws://{self.address}/stream/live", timeout=10, header=headers).close()
            except websocket.WebSocketBadStatusException as e:
                return e.status_code
            return "open"

        self.assertEqual((yield threads.deferToThread(handshake, [])), 401)
        self.assertEqual((yield threads.deferToThread(handshake, [f"Authorization: Bearer {VIC}"])), "open")

    @defer.inlineCallbacks
    def test_roles(self):
        """A controller sets and snaps; a viewer reads but is refused changes and snaps (403, naming the token)."""
        status, _, _ = yield self.raw("PUT", "/api/exposure_time", {"value": 0.02}, token=ALICE)
        self.assertEqual(status, 200)
        status, _, answer = yield self.raw("GET", "/api/exposure_time", token=VIC)
        self.assertEqual((status, answer["value"]), (200, 0.02))
        for method, path, body in (("PUT", "/api/exposure_time", {"value": 0.03}), ("GET", "/api/snap", None),
                                   ("POST", "/api/burst", {"value": {"frames": 2}}), ("DELETE", "/api/burst", None)):
            status, _, answer = yield self.raw(method, path, body, token=VIC)
            self.assertEqual((status, answer["error"]), (403, "forbidden"), path)
            self.assertIn("'vic'", answer["message"])
        self.assertIsNone(self.server.bursts.current)

    @defer.inlineCallbacks
    def test_client_token(self):
        """The client sends its token (argument or $ANDOR_TOKEN); without one it raises the server's 401."""
        cam = self.camera(ALICE)
        self.assertEqual((yield threads.deferToThread(cam.exposure_time, 0.01)), 0.01)
        self.patch(os, "environ", {**os.environ, "ANDOR_TOKEN": VIC})
        viewer = self.camera(None)
        self.assertEqual((yield threads.deferToThread(viewer.exposure_time)), 0.01)
        with self.assertRaises(andor.BadRequest) as caught:
            yield threads.deferToThread(viewer.exposure_time, 0.02)
        self.assertEqual(caught.exception.status, 403)
        self.patch(os, "environ", {k: v for k, v in os.environ.items() if k != "ANDOR_TOKEN"})
        with self.assertRaises(andor.BadRequest) as caught:
            yield threads.deferToThread(self.camera(None).exposure_time)
        self.assertEqual(caught.exception.status, 401)

    @defer.inlineCallbacks
    def test_command_line_token(self):
        """The andor command passes --token; without one it says in one line that the server needs one."""
        import contextlib
        import io

        from andor import cli

        def run(*argv):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = cli.main(["--server", self.address, *argv])
            return status, out.getvalue(), err.getvalue()

        self.patch(os, "environ", {k: v for k, v in os.environ.items() if k != "ANDOR_TOKEN"})
        status, out, _ = yield threads.deferToThread(run, "--token", ALICE, "set", "ExposureTime", "0.004")
        self.assertEqual((status, json.loads(out)), (0, 0.004))
        status, _, err = yield threads.deferToThread(run, "get", "ExposureTime")
        self.assertEqual(status, 1)
        self.assertIn("needs a token", err)

    @defer.inlineCallbacks
    def test_cookie_login(self):
        """The viewer logs in once: an HttpOnly, SameSite=Strict cookie that then stands for the token;
        a wrong token is refused and logged; logout clears it."""

        def session():
            conn = http.client.HTTPConnection(*self.address.split(":"), timeout=10)
            conn.request("POST", "/api/login", json.dumps({"value": "wrong-token-0123456789abc"}),
                         {"Content-Type": "application/json"})
            refused = conn.getresponse()
            refused.read()
            conn.request("POST", "/api/login", json.dumps({"value": VIC}), {"Content-Type": "application/json"})
            response = conn.getresponse()
            login = json.loads(response.read())
            cookie = response.getheader("Set-Cookie")
            conn.request("GET", "/api/session", headers={"Cookie": cookie.split(";")[0]})
            whoami = json.loads(conn.getresponse().read())
            conn.request("PUT", "/api/exposure_time", json.dumps({"value": 0.5}),
                         {"Cookie": cookie.split(";")[0], "Content-Type": "application/json"})
            forbidden = conn.getresponse()
            forbidden.read()
            conn.request("POST", "/api/logout", headers={"Cookie": cookie.split(";")[0]})
            logout = conn.getresponse()
            logout.read()
            conn.close()
            return refused.status, login, cookie, whoami, forbidden.status, logout.getheader("Set-Cookie")

        refused, login, cookie, whoami, forbidden, logout = yield threads.deferToThread(session)
        self.assertEqual(refused, 401)
        self.assertEqual(login["value"], {"name": "vic", "role": "viewer", "tokens": True})
        self.assertTrue(cookie.startswith(f"andor_token={VIC};"))
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=strict", cookie)
        self.assertEqual(whoami["value"]["name"], "vic")
        self.assertEqual(forbidden, 403)
        self.assertIn("andor_token=;", logout)
        self.assertTrue(any("failed login" in str(e.get("log_format")) for e in self.events))

    @defer.inlineCallbacks
    def test_audit_trail(self):
        """Every request that changes something is logged with the token's name, its role and the peer."""
        yield self.raw("PUT", "/api/exposure_time", {"value": 0.02}, token=ALICE)
        yield self.raw("PUT", "/api/exposure_time", {"value": 0.02}, token=VIC)
        yield self.raw("GET", "/api/exposure_time", token=ALICE)
        lines = [e for e in self.events if str(e.get("log_format", "")).startswith("audit:")]
        self.assertEqual([(e["name"], e["method"], e["path"], e["code"]) for e in lines],
                         [("alice", "PUT", "/api/exposure_time", 200), ("vic", "PUT", "/api/exposure_time", 403)])
        self.assertTrue(lines[0]["peer"].startswith("127.0.0.1:"))


class BurstOwnershipTests(AuthTestCase):
    def read_first(self, token, burst_id):
        """The first message of the burst's stream for ``token``, and the close code if it closes."""
        ws = websocket.create_connection(f"ws://{self.address}/stream/burst?id={burst_id}", timeout=10,
                                         header=[f"Authorization: Bearer {token}"])
        try:
            first = json.loads(ws.recv())
            if first["type"] != "error":
                return first, None
            opcode, data = ws.recv_data(control_frame=True)
            return first, struct.unpack("!H", data[:2])[0]
        finally:
            ws.close()

    @defer.inlineCallbacks
    def test_owner_controllers_and_named_viewers_read(self):
        """A burst is read by its owner, any controller, and the viewers it names; another viewer is refused
        (4403, a reason the client raises) and the frames stay for the owner."""
        alice = self.camera(ALICE)
        yield threads.deferToThread(alice.aoi, {"width": 64, "height": 64})
        yield threads.deferToThread(alice.exposure_time, 0.001)
        started = yield threads.deferToThread(lambda: alice.burst(6, 100, viewers=["vic"]))
        burst_id = started.id
        first, code = yield threads.deferToThread(self.read_first, VAL, burst_id)
        self.assertEqual((first["error"], code), ("burst_refused", 4403))
        self.assertIn("'val' may not read it", first["message"])
        with self.assertRaises(andor.BadRequest) as caught:
            yield threads.deferToThread(lambda: next(self.camera(VAL).resume_burst()))
        self.assertEqual(caught.exception.status, 403)
        first, _ = yield threads.deferToThread(self.read_first, VIC, burst_id)
        self.assertEqual(first["type"], "stream")
        first, _ = yield threads.deferToThread(self.read_first, BOB, burst_id)
        self.assertEqual(first["type"], "stream")
        frames = yield threads.deferToThread(alice.resume_burst)
        images = yield threads.deferToThread(list, frames)
        self.assertEqual(len(images), 6)
