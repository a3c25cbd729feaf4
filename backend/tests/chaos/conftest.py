"""The chaos test's counts are shown in the terminal summary (whatever the capture mode), so that CI
output carries them."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest's hook signature
    lines = getattr(config, "_chaos_summary", None)
    if lines:
        terminalreporter.section("chaos test counts")
        for line in lines:
            terminalreporter.write_line(line)
