"""Errors of the strategy sandbox (parent side)."""

from __future__ import annotations


class SandboxUnavailable(RuntimeError):
    """Strategy code cannot be run here: the sandbox cannot be created (the message says why: no bwrap,
    no unprivileged user namespaces, no seccomp binding), or it can't and the code is not trusted."""


class StrategyLoadError(Exception):
    """A strategy file cannot be used: syntax or import error, no or several Strategy subclasses, an
    invalid definition. ``message`` names the file by its label, never by a server path."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RunnerFailure(Exception):
    """The runner process died, was killed at its budget, or sent something that is not a valid reply."""
