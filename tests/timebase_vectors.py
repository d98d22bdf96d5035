"""docs/timebase-vectors.json, and the check that holds a reader of time bases (server's or client's) to it."""

import json
import os

import numpy as np

with open(os.path.join(os.path.dirname(__file__), "..", "docs", "timebase-vectors.json")) as f:
    VECTORS = json.load(f)["vectors"]


def check_reader(test, reader):
    """``reader(timebase_json)`` gives ``(utc_ns(ticks), uncertainty_s(ticks), utc_trusted)`` for each vector:
    UTC within 1 ns of the exact map, the uncertainty to a relative 1e-9, trust as stated."""
    for v in VECTORS:
        ticks = np.array([int(t) for t in v["ticks"]], np.int64)
        utc_ns, uncertainty_s, trusted = reader(json.loads(json.dumps(v["timebase"])))
        got = utc_ns(ticks)
        test.assertEqual(got.dtype, np.int64, v["description"])
        expected = [int(u) for u in v["utc_ns"]]
        test.assertLessEqual(max(abs(int(g) - e) for g, e in zip(got, expected, strict=True)), 1, v["description"])
        np.testing.assert_allclose(uncertainty_s(ticks), v["uncertainty_s"], rtol=1e-9, atol=0,
                                   err_msg=v["description"])
        test.assertEqual(trusted, v["utc_trusted"], v["description"])
