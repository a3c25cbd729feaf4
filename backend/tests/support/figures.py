"""Figures a test reports (counts, latencies, what a checker found), printed in sections of the terminal
summary, so CI output carries them whatever the capture mode and also when tests run in pytest-xdist
workers.

A test records a figure with the ``figures`` fixture::

    def test_flood(figures):
        figures.add("security checks", "flood", "p99 40 ms")

The figure travels in the test's report (``user_properties``, which xdist sends from its workers to the
controlling process); the controlling process prints, per section, one ``name: value`` line per figure,
the last value of a name winning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

PROPERTY = "tradefleet-figure"
"""The ``user_properties`` key of a figure; its value is ``[section, name, value]``."""


@dataclass
class Figures:
    """The figures of one test (see the module docstring)."""

    node: pytest.Item

    def add(self, section: str, name: str, value: object) -> None:
        """Record ``name: value`` for the summary section ``section``."""
        self.node.user_properties.append((PROPERTY, [section, name, str(value)]))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """``figures.add(section, name, value)``: a line in the terminal summary's section ``section``."""
    return Figures(request.node)


class _Summary:
    """Collects the figures of every test report and prints them at the end of the run."""

    def __init__(self) -> None:
        self.sections: dict[str, dict[str, str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == PROPERTY:
                section, name, text = value
                self.sections.setdefault(section, {})[name] = text

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for section, lines in self.sections.items():
            terminalreporter.section(section)
            for name, text in lines.items():
                terminalreporter.write_line(f"{name}: {text}")


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controlling process (or a run without xdist) prints
        config.pluginmanager.register(_Summary(), "tradefleet-figures-summary")
