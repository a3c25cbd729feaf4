"""Figures of the automated attack tests, printed by ``conftest.pytest_terminal_summary``."""

FIGURES: dict[str, str] = {}
