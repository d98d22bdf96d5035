"""The direction of imports: every module of andor_twisted imports only from its own layer or the layers
below it, the bottom layer imports no I/O, and the client never imports the server. The modules are read
with ``ast``, not imported. Run ``python -m tests.test_layers`` to print the graph (README, "How it is
built")."""

import ast
import collections
import os
import sys

from twisted.trial import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# bottom first; a module may import from its own layer and the layers before it
LAYERS = [
    ("protocol", "the sans-I/O core: frame header, burst states, ack window, stream messages"),
    ("hostclock", "how well the host's UTC clock is synchronised (the kernel's ntp_adjtime), clock brackets"),
    ("camera", "the driver over pyAndorSDK3's ATCore, and the simulated SDK3 install"),
    ("service", "CameraService: opens the camera, owns the one SDK thread"),
    ("acquisition", "the arbiter of the camera, frames, the spool, bursts, the live view"),
    ("gather", "gathering sends: the one module that touches Twisted internals"),
    ("stream", "WebSocket framing and the frame streams' protocols"),
    ("web", "the JSON API, the site, the viewer's static files"),
    ("logs", "the JSON log format (--log-format json)"),
    ("systemd", "sd_notify: READY=1 and the watchdog's pings to systemd"),
    ("tap", "the command line and the service tree: the one place that wires"),
    ("journal", "a log observer for systemd's journal (twistd --logger)"),
]
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}
# what the bottom layer may import: the standard library's pure parts, nothing that does I/O or Twisted
PROTOCOL_MAY_IMPORT = {"__future__", "array", "collections", "dataclasses", "enum", "json", "math", "struct", "typing",
                       "numpy",  # numpy: arrays of ticks and times are values too
                       "hmac"}  # hmac.compare_digest: comparing tokens in constant time is arithmetic


def modules(package_dir, package):
    """{dotted module name: path} of the .py files under ``package_dir``."""
    found = {}
    for directory, _, files in os.walk(package_dir):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                parts = os.path.relpath(path, os.path.dirname(package_dir))[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts.pop()
                found[".".join(parts)] = path
    return dict(sorted(found.items()))


def imports(path, module):
    """The absolute names a module imports (relative imports resolved against ``module``)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level] if not path.endswith("__init__.py") else \
                    module.split(".")[: len(module.split(".")) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def layer_of(module):
    """The layer of an andor_twisted module: its first name below the package."""
    return module.split(".")[1] if module.count(".") else None


def graph():
    """{(importing layer, imported layer): [(module, imported name), ...]} between distinct layers."""
    edges = collections.defaultdict(list)
    for module, path in modules(os.path.join(ROOT, "andor_twisted"), "andor_twisted").items():
        here = layer_of(module)
        if here is None:
            continue
        for name in imports(path, module):
            if name.startswith("andor_twisted."):
                there = layer_of(name)
                if there != here and there in RANK:
                    edges[here, there].append((module, name))
    return edges


class LayerTests(unittest.TestCase):
    def test_every_module_has_a_layer(self):
        """Each top-level module or package of andor_twisted is one of LAYERS (a new one needs a place)."""
        top = {layer_of(m) for m in modules(os.path.join(ROOT, "andor_twisted"), "andor_twisted")} - {None}
        self.assertEqual(top - set(RANK), set())

    def test_no_upward_import(self):
        """No module imports from a layer above its own."""
        upward = [f"{module} ({a}) imports {name} ({b})" for (a, b), uses in graph().items() if RANK[b] > RANK[a]
                  for module, name in uses]
        self.assertEqual(upward, [])

    def test_protocol_does_no_io(self):
        """The bottom layer imports only the pure standard library and itself: no Twisted, no sockets, no
        threads, no numpy."""
        for module, path in modules(os.path.join(ROOT, "andor_twisted", "protocol"), "andor_twisted").items():
            for name in imports(path, module):
                root = name.split(".")[0]
                if root == "andor_twisted":
                    self.assertTrue(name.startswith("andor_twisted.protocol"), f"{module} imports {name}")
                else:
                    self.assertIn(root, PROTOCOL_MAY_IMPORT, f"{module} imports {name}")

    def test_client_stands_alone(self):
        """The client package imports nothing of the server (it installs without it)."""
        for module, path in modules(os.path.join(ROOT, "client", "andor"), "andor").items():
            for name in imports(path, module):
                self.assertFalse(name.startswith(("andor_twisted", "twisted")), f"{module} imports {name}")

    def test_only_gather_touches_twisted_internals(self):
        """Only gather.py reaches for the transport internals GatherWriter relies on, or sets SEND_LIMIT."""
        internals = {"dataBuffer", "offset", "_tempDataLen", "_tempDataBuffer", "SEND_LIMIT", "doWrite"}
        for module, path in modules(os.path.join(ROOT, "andor_twisted"), "andor_twisted").items():
            if module == "andor_twisted.gather":
                continue
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
            used = {node.attr for node in ast.walk(tree)
                    if isinstance(node, ast.Attribute) and "transport" in ast.unparse(node.value)} & internals
            self.assertEqual(used, set(), module)

    def test_the_checker_sees_an_upward_import(self):
        """The walk finds imports in every form, relative ones included (else the tests above prove nothing)."""
        module = "andor_twisted.camera.driver"
        source = "from ..web import api\nimport andor_twisted.stream.framing\nfrom andor_twisted.tap import x\n"
        path = os.path.join(self.mktemp() + ".py")
        with open(path, "w") as f:
            f.write(source)
        found = {layer_of(n) for n in imports(path, module) if n.startswith("andor_twisted.")}
        self.assertEqual(found, {"web", "stream", "tap"})


def main():
    """Print the layers, bottom first, each with the layers it imports."""
    edges = graph()
    for name, what in reversed(LAYERS):
        below = sorted({b for (a, b) in edges if a == name}, key=RANK.get, reverse=True)
        print(f"{name:12s} -> {', '.join(below) or '(nothing of ours)':40s} {what}")


if __name__ == "__main__":
    sys.exit(main())
