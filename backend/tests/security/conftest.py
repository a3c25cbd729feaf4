"""Fixtures and reporting of the security tests.

The automated attack tests put their figures (schemathesis cases, bandit findings, pip-audit results)
into ``security_figures.FIGURES``; :func:`pytest_terminal_summary` prints them at the end of the run, so they show
even with ``-q`` and without ``-s``.
"""

from __future__ import annotations

from security_figures import FIGURES


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    if FIGURES:
        terminalreporter.section("security checks")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
