"""Shared by the sandbox tests and their fixtures: the corpus folder, the canaries, the listener."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HOSTILE = Path(__file__).resolve().parent / "hostile"
"""The escape corpus: one hostile strategy per file."""


@dataclass
class Canaries:
    """Random secrets planted where a strategy would look for them; none may come back."""

    values: dict[str, str]
    var_file: Path

    def needles(self) -> dict[str, str]:
        out = dict(self.values)
        out.update({f"{k}[4:20]": v[4:20] for k, v in self.values.items() if len(v) >= 20})
        return out

    def found_in(self, *texts: str) -> list[str]:
        """Names of the canaries that occur in any of ``texts``."""
        haystack = "\n".join(texts)
        return [name for name, needle in self.needles().items() if needle in haystack]


@dataclass
class Listener:
    """A TCP listener on 127.0.0.1: ``port``, and how many connections it accepted."""

    port: int
    accepted: int = 0
