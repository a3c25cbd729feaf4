"""What the platform knows of a strategy without running it: produced by a runner when it loads a file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

_NAME_MAX = 100


@dataclass(frozen=True)
class StrategyManifest:
    """A strategy's metadata as its runner reported it, checked by :meth:`from_json`.

    ``name``: catalog name (snake_case); ``class_name``; ``description`` (first docstring paragraph);
    ``timeframe`` (ccxt notation); ``params_schema`` (JSON schema object of the parameters);
    ``startup_candles`` (closed candles needed before the first signal, with the default parameters; None
    when the strategy could not say);
    ``stateful`` (implements ``on_candle``); ``has_signals`` (implements ``signals``); ``stoploss``,
    ``take_profit``, ``trailing_stop`` (fractions or None); ``position_size`` (0..1];
    ``interface_version`` (the SDK version the file was written for).
    """

    name: str
    class_name: str
    description: str
    timeframe: str
    params_schema: dict[str, Any]
    startup_candles: int | None
    stateful: bool
    has_signals: bool
    stoploss: float | None
    take_profit: float | None
    trailing_stop: float | None
    position_size: float
    interface_version: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "StrategyManifest":
        """Build from a runner's reply; raises ``ValueError`` naming the first field of the wrong type."""
        if not isinstance(data, dict):
            raise ValueError("manifest is not an object")
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"manifest lacks {', '.join(missing)}")

        def text(key: str, limit: int) -> str:
            value = data[key]
            if not isinstance(value, str) or len(value) > limit:
                raise ValueError(f"manifest {key} must be a string of at most {limit} characters")
            return value

        def fraction(key: str) -> float | None:
            value = data[key]
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"manifest {key} must be a number or null")
            return float(value)

        def flag(key: str) -> bool:
            if not isinstance(data[key], bool):
                raise ValueError(f"manifest {key} must be a boolean")
            return data[key]

        def integer(key: str, *, optional: bool = False) -> int | None:
            value = data[key]
            if value is None and optional:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**7:
                raise ValueError(f"manifest {key} must be a non-negative integer")
            return value

        schema = data["params_schema"]
        if not isinstance(schema, dict) or not isinstance(schema.get("properties", {}), dict):
            raise ValueError("manifest params_schema must be a JSON schema object")
        position_size = fraction("position_size")
        if position_size is None:
            raise ValueError("manifest position_size must be a number")
        return cls(name=text("name", _NAME_MAX), class_name=text("class_name", 200),
                   description=text("description", 5000), timeframe=text("timeframe", 10),
                   params_schema=schema, startup_candles=integer("startup_candles", optional=True),
                   stateful=flag("stateful"), has_signals=flag("has_signals"), stoploss=fraction("stoploss"),
                   take_profit=fraction("take_profit"), trailing_stop=fraction("trailing_stop"),
                   position_size=position_size, interface_version=integer("interface_version"))
