"""Hostile, in signals(): puts the repository's backend folder (the exact host path, a parameter) on
sys.path, imports the platform's settings and vault, and decrypts with the vault."""

import sys

from tradefleet.strategy import Param, ParamError, Strategy


class Text(Param):
    def validate(self, value):
        if not isinstance(value, str) or len(value) > 4000:
            raise ParamError(self.name, "must be text")
        return value


class ImportPlatformFromRepo(Strategy):
    """Raises with the settings it read, or with the import error."""

    timeframe = "1m"
    backend = Text("")

    def signals(self, candles):
        for name in [m for m in sys.modules if m.startswith("tradefleet")]:
            del sys.modules[name]  # forget the SDK's package so the repository's copy would be imported
        sys.path.insert(0, self.backend)
        from tradefleet.config import get_settings  # noqa: PLC0415
        from tradefleet.security import vault  # noqa: PLC0415

        vault.unlock_decryption()
        raise RuntimeError(f"GOT {get_settings().JWT_SECRET_KEY!r}")
