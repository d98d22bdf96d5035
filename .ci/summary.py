"""Turn trial's closing line, PASSED/FAILED (failures=1, errors=0, skips=2, successes=70), into
'N passed, N failed, N skipped'. No closing line at all (the install or the import broke) is a failure."""

import re
import sys

text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
closing = re.findall(r"^(?:PASSED|FAILED) \(([^)]*)\)\s*$", text, re.M)
if not closing:
    print("0 passed, 1 failed, 0 skipped")
    sys.exit(1)
counts = {name: int(n) for name, n in re.findall(r"(\w+)=(\d+)", closing[-1])}
passed = counts.get("successes", 0) + counts.get("expectedFailures", 0)
failed = counts.get("failures", 0) + counts.get("errors", 0) + counts.get("unexpectedSuccesses", 0)
print(f"{passed} passed, {failed} failed, {counts.get('skips', 0)} skipped")
