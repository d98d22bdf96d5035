"""TLS through a Twisted endpoint (--listen ssl:...), with a self-signed certificate made here, and the
client verifying it against that certificate as its CA file (issue 11, docs/security.md)."""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import defer, threads
from twisted.trial import unittest

import andor
from tests.helpers import LoopbackServer
from tests.test_auth import ALICE, write_tokens


def self_signed(directory):
    """(key path, certificate path) of a self-signed certificate for localhost and 127.0.0.1, as
    docs/security.md makes one with openssl."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    os.makedirs(directory)
    key_path, cert_path = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class TLSTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        directory = self.mktemp()
        key, self.cert = self_signed(directory)
        self.server = LoopbackServer()
        # the first --listen is the one the fixture records: TLS on loopback, with tokens as beyond it
        yield self.server.start("--listen", f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={self.cert}",
                                "--tokens", write_tokens(os.path.join(directory, "tokens")))
        self.port = self.server.address.split(":")[1]

    def tearDown(self):
        return self.server.stop()

    def camera(self, **options):
        cam = andor.Camera(f"https://127.0.0.1:{self.port}", token=ALICE, **options)
        self.addCleanup(cam.close)
        return cam

    @defer.inlineCallbacks
    def test_https_and_wss_verified(self):
        """Verified against the certificate as CA file, the client drives the camera over https and reads a
        burst over wss."""
        cam = self.camera(verify=self.cert)
        yield threads.deferToThread(cam.aoi, {"width": 64, "height": 64})
        self.assertEqual((yield threads.deferToThread(cam.exposure_time, 0.001)), 0.001)
        frames = yield threads.deferToThread(cam.burst, 5, 100.0)
        images = yield threads.deferToThread(list, frames)
        self.assertEqual(len(images), 5)
        self.assertEqual(images[0].shape, (64, 64))

    @defer.inlineCallbacks
    def test_unverified_certificate_refused(self):
        """Against the system's CAs, a self-signed server is refused, saying why."""
        with self.assertRaises(andor.ServerUnreachable) as caught:
            yield threads.deferToThread(self.camera().exposure_time)
        self.assertIn("CERTIFICATE_VERIFY_FAILED", str(caught.exception))
