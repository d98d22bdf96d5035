"""The site's guard on a real loopback server: Host names (DNS rebinding), origins of browser requests
and WebSocket handshakes, CORS (issue 11)."""

import websocket
from twisted.internet import defer, threads
from twisted.trial import unittest

from andor_twisted import tap
from andor_twisted.web.guard import bad_path, host_name
from tests.helpers import LoopbackServer


class GuardTestCase(unittest.TestCase):
    args = ()

    @defer.inlineCallbacks
    def setUp(self):
        self.server = LoopbackServer()
        yield self.server.start(*self.args)
        self.port = self.server.address.split(":")[1]
        self.own = f"http://{self.server.address}"

    def tearDown(self):
        return self.server.stop()

    def raw(self, method, path, body=None, **headers):
        return threads.deferToThread(self.server.raw, method, path, body,
                                     {**({"Content-Type": "application/json"} if body else {}), **headers})

    def handshake(self, path, **options):
        """Open a WebSocket to ``path`` (blocking, in a thread): "open", or the refusal's status."""

        def connect():
            try:
                ws = websocket.create_connection(f"ws://{self.server.address}{path}", timeout=10, **options)
            except websocket.WebSocketBadStatusException as e:
                return e.status_code
            ws.close()
            return "open"

        return threads.deferToThread(connect)


class HostTests(GuardTestCase):
    @defer.inlineCallbacks
    def test_rebinding_host_refused(self):
        """A DNS-rebinding page's requests carry its own name in Host: refused (421) for the API, the
        streams and the viewer's files alike, with the option that names allowed hosts."""
        for path in ("/api/temperature", "/", "/static/api.js"):
            status, kind, answer = yield self.raw("GET", path, Host=f"attacker.example:{self.port}")
            self.assertEqual((status, kind, answer["error"]), (421, "application/json", "unknown_host"), path)
            self.assertIn("--allowed-hosts", answer["message"])
        status = yield self.handshake("/stream/live", host=f"attacker.example:{self.port}")
        self.assertEqual(status, 421)
        self.assertIsNone(self.server.bursts.current)

    @defer.inlineCallbacks
    def test_loopback_names_answered(self):
        """The loopback names and the address the connection came in on are always answered."""
        for host in (f"127.0.0.1:{self.port}", f"localhost:{self.port}", "LOCALHOST", f"[::1]:{self.port}"):
            status, _, answer = yield self.raw("GET", "/api/temperature", Host=host)
            self.assertEqual(status, 200, f"{host}: {answer}")

    def test_host_name(self):
        """A Host header's name: without port, brackets or case."""
        self.assertEqual([host_name(h) for h in ("[::1]:80", "Cam.Lab:8000", "cam", "::1")],
                         ["::1", "cam.lab", "cam", "::1"])

    def test_bad_path(self):
        """Decoded path segments with NUL, slashes, backslashes or dot segments are refused."""
        self.assertIsNone(bad_path([b"static", b"api.js"]))
        for segments in ([b"a\x00"], [b"..", b"x"], [b"."], [b"a/b"], [b"a\\b"]):
            self.assertIsNotNone(bad_path(segments), segments)


class AllowedHostsTests(GuardTestCase):
    args = ("--allowed-hosts", "camera.lab.example, other.example")

    @defer.inlineCallbacks
    def test_configured_names_answered(self):
        """--allowed-hosts adds names; others are still refused."""
        status, _, _ = yield self.raw("GET", "/api/temperature", Host=f"camera.lab.example:{self.port}")
        self.assertEqual(status, 200)
        status, _, _ = yield self.raw("GET", "/api/temperature", Host="third.example")
        self.assertEqual(status, 421)


class OriginTests(GuardTestCase):
    @defer.inlineCallbacks
    def test_foreign_page_cannot_start_a_burst(self):
        """A cross-site POST (as a foreign page's fetch or form sends it) is refused, and nothing starts."""
        status, _, answer = yield self.raw("POST", "/api/burst", b'{"value": {"frames": 5}}',
                                           Origin="http://evil.example")
        self.assertEqual((status, answer["error"]), (403, "cross_origin"))
        self.assertIsNone(self.server.bursts.current)
        status, _, answer = yield self.raw("POST", "/api/burst", b'{"value": {"frames": 2}}', Origin=self.own)
        self.assertEqual(status, 200, answer)

    @defer.inlineCallbacks
    def test_foreign_stream_handshake_refused(self):
        """A WebSocket handshake from a foreign origin is refused; from the server's own page it opens;
        a script without Origin (the Python client) opens too."""
        self.assertEqual((yield self.handshake("/stream/live", origin="http://evil.example")), 403)
        self.assertEqual((yield self.handshake("/stream/live", origin="null")), 403)
        self.assertEqual((yield self.handshake("/stream/live", origin=self.own)), "open")
        self.assertEqual((yield self.handshake("/stream/live", suppress_origin=True)), "open")

    @defer.inlineCallbacks
    def test_cross_site_fetch_metadata(self):
        """A browser's cross-site request without Origin (an <img> of a snap) is refused for the API; the
        viewer's own files stay loadable."""
        status, _, answer = yield self.raw("GET", "/api/snap", **{"Sec-Fetch-Site": "cross-site"})
        self.assertEqual((status, answer["error"]), (403, "cross_origin"))
        status, _, _ = yield self.raw("GET", "/static/api.js", Origin="http://evil.example")
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_cors_refused(self):
        """A CORS preflight from another origin is refused and says no Access-Control header."""
        status, _, answer = yield self.raw("OPTIONS", "/api/exposure_time", Origin="http://evil.example",
                                           **{"Access-Control-Request-Method": "PUT"})
        self.assertEqual((status, answer["error"]), (403, "cross_origin"))


class AllowedOriginTests(GuardTestCase):
    args = ("--allowed-origins", "https://dashboard.lab.example")

    @defer.inlineCallbacks
    def test_cors_for_configured_origin(self):
        """An allowed origin gets its preflight answered and its requests marked readable by it."""

        def preflight():
            import http.client
            conn = http.client.HTTPConnection(*self.server.address.split(":"), timeout=10)
            conn.request("OPTIONS", "/api/exposure_time", headers={
                "Origin": "https://dashboard.lab.example", "Access-Control-Request-Method": "PUT"})
            response = conn.getresponse()
            response.read()
            conn.close()
            return response.status, dict(response.getheaders())

        status, headers = yield threads.deferToThread(preflight)
        self.assertEqual(status, 204)
        self.assertEqual(headers["Access-Control-Allow-Origin"], "https://dashboard.lab.example")
        self.assertIn("PUT", headers["Access-Control-Allow-Methods"])
        status, _, _ = yield self.raw("PUT", "/api/exposure_time", b'{"value": 0.02}',
                                      Origin="https://dashboard.lab.example")
        self.assertEqual(status, 200)


class ListenerTests(unittest.TestCase):
    def test_is_loopback(self):
        """Which listeners only this machine reaches."""
        for endpoint in ("tcp:8000:interface=127.0.0.1", "tcp:port=1:interface=\\:\\:1", "unix:/run/a.sock",
                         "ssl:8443:privateKey=k.pem:interface=localhost", "tcp:8000:interface=127.0.0.2"):
            self.assertTrue(tap.is_loopback(endpoint), endpoint)
        for endpoint in ("tcp:8000", "tcp:8000:interface=0.0.0.0", "systemd:domain=INET:index=0",
                         "tcp:8000:interface=192.168.1.5", "ssl:8443:privateKey=k.pem"):
            self.assertFalse(tap.is_loopback(endpoint), endpoint)

    def test_allowed_hosts(self):
        """Loopback names, listening interfaces and --allowed-hosts; this machine's name only beyond loopback."""
        options = tap.Options()
        options.parseOptions(["--listen", "tcp:8000:interface=10.1.2.3", "--allowed-hosts", "cam.example:80",
                              "--tokens", self.token_file()])
        hosts = tap.allowed_hosts(options)
        self.assertTrue({"localhost", "127.0.0.1", "::1", "10.1.2.3", "cam.example"} <= hosts)
        import socket
        self.assertIn(socket.gethostname().lower(), hosts)

    def token_file(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("alice controller " + "a" * 32 + "\n")
        import os
        os.chmod(path, 0o600)
        return path

    def test_bad_origin_option(self):
        """--allowed-origins takes scheme://host[:port]."""
        from twisted.python import usage
        options = tap.Options()
        self.assertRaises(usage.UsageError, options.parseOptions, ["--allowed-origins", "evil.example/path"])
