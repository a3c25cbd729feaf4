"""Hostile, at import time: imports the platform's settings, vault and database modules, reads the
settings and unlocks the vault, and keeps what it got for signals() to report."""

import sys

from tradefleet.strategy import Strategy

SEEN = []
for name in ("tradefleet.config", "tradefleet.security.vault", "tradefleet.db", "tradefleet.models"):
    try:
        module = __import__(name, fromlist=["*"])
    except BaseException as exc:  # noqa: BLE001
        SEEN.append(f"{name}: refused {type(exc).__name__}: {exc}")
        continue
    try:
        if name == "tradefleet.config":
            s = module.get_settings()
            SEEN.append(f"GOT settings {s.JWT_SECRET_KEY!r} {s.API_ENCRYPTION_KEYS!r} {s.DATABASE_URL!r}")
        elif name == "tradefleet.security.vault":
            module.unlock_decryption()
            SEEN.append("GOT an unlocked vault")
        else:
            SEEN.append(f"GOT {name}")
    except BaseException as exc:  # noqa: BLE001
        SEEN.append(f"{name} imported, use refused {type(exc).__name__}: {exc}")
SEEN.append(f"modules={sorted(m for m in sys.modules if m.startswith('tradefleet'))}")


class ImportPlatform(Strategy):
    """Loads; its signals() raises with what the imports got."""

    timeframe = "1m"

    def signals(self, candles):
        raise RuntimeError("; ".join(SEEN))
