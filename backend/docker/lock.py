"""Print ``requirements.lock`` from a pip installation report.

Usage: ``python backend/docker/lock.py REPORT.json > backend/requirements.lock``, where the report comes
from ``pip install --dry-run --ignore-installed --report REPORT.json ./backend`` (pip 23 or newer): every
package pip would install for the ``tradefleet`` package, as ``name==version``, sorted by name, the
package itself left out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HEADER = """\
# The runtime dependencies of the tradefleet package (pyproject.toml, [project] dependencies), every one
# pinned: what the Docker images install (backend/Dockerfile.web, backend/Dockerfile.worker) and what the
# deploy test builds. Python 3.11 on Linux x86_64 (glibc 2.34 or newer: Debian 12).
# Regenerate after changing the dependencies, from the repository root:
#   .venv/bin/pip install --dry-run --ignore-installed --quiet --report /tmp/report.json ./backend
#   .venv/bin/python backend/docker/lock.py /tmp/report.json > backend/requirements.lock
"""


def lock_lines(report: dict) -> list[str]:
    """``name==version`` of every package of ``report["install"]`` but ``tradefleet``, sorted."""
    pins = {(item["metadata"]["name"].lower(), item["metadata"]["version"]) for item in report["install"]}
    return [f"{name}=={version}" for name, version in sorted(pins) if name != "tradefleet"]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    report = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    sys.stdout.write(HEADER + "".join(line + "\n" for line in lock_lines(report)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
