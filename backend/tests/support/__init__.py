"""Helpers of the test suite that are not fixtures: pytest plugins the root ``conftest.py`` loads."""
