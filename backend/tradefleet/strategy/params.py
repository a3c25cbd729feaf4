"""Typed strategy parameters.

A parameter is declared as a class attribute of a :class:`~tradefleet.strategy.base.Strategy`; the
registry turns the declarations into a JSON schema (draft 2020-12 keywords), the frontend turns the
schema into a form, and :meth:`Strategy.validate_params` checks a run's parameters against them.
On an instance, the attribute reads the run's value.
"""

from __future__ import annotations

import math
from typing import Any


class ParamError(ValueError):
    """A parameter value is invalid. ``field`` is the parameter's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Param:
    """Base of the parameter types. ``default`` must itself be valid (checked when the class is defined
    by the registry, so a bad default marks the file broken rather than failing a run later)."""

    json_type = "string"

    def __init__(self, default: Any, *, help: str = "") -> None:
        self.default = default
        self.help = help
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return instance.params.get(self.name, self.default)

    def validate(self, value: Any) -> Any:
        """Return the value coerced to this type, or raise :class:`ParamError`."""
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        """This parameter as a JSON-schema property."""
        out: dict[str, Any] = {"type": self.json_type, "default": self.default}
        if self.help:
            out["description"] = self.help
        return out


class _NumberParam(Param):
    def __init__(
        self, default: float, *, low: float, high: float, step: float | None = None, help: str = ""
    ) -> None:
        super().__init__(default, help=help)
        if low > high:
            raise ParamError(self.name or "param", f"low {low} is above high {high}")
        self.low, self.high, self.step = low, high, step

    def _check_range(self, value: float) -> None:
        if value < self.low or value > self.high:
            raise ParamError(self.name, f"must be between {self.low} and {self.high}, got {value}")

    def schema(self) -> dict[str, Any]:
        out = super().schema()
        out.update(minimum=self.low, maximum=self.high)
        if self.step is not None:
            # JSON schema has no "step" (multipleOf counts from zero, not from `low`): a form hint.
            out["x-step"] = self.step
        return out


class IntParam(_NumberParam):
    """An integer in ``[low, high]``."""

    json_type = "integer"

    def __init__(self, default: int, *, low: int, high: int, step: int = 1, help: str = "") -> None:
        super().__init__(default, low=low, high=high, step=step, help=help)

    def validate(self, value: Any) -> int:
        # bool is an int in Python; a checkbox value is not a length.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(self.name, f"must be an integer, got {type(value).__name__}")
        if isinstance(value, float) and not value.is_integer():
            raise ParamError(self.name, f"must be an integer, got {value}")
        value = int(value)
        self._check_range(value)
        if self.step and (value - self.low) % self.step:
            raise ParamError(self.name, f"must be {self.low} plus a multiple of {self.step}, got {value}")
        return value


class DecimalParam(_NumberParam):
    """A real number in ``[low, high]`` (a JSON number; not a ``decimal.Decimal``)."""

    json_type = "number"

    def validate(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(self.name, f"must be a number, got {type(value).__name__}")
        try:
            value = float(value)
        except OverflowError:  # an int beyond float's range
            raise ParamError(self.name, f"must be between {self.low} and {self.high}") from None
        if not math.isfinite(value):
            raise ParamError(self.name, "must be a finite number")
        self._check_range(value)
        return value


class CategoricalParam(Param):
    """One of a fixed list of choices (strings or numbers)."""

    def __init__(self, default: Any, *, choices: list[Any], help: str = "") -> None:
        super().__init__(default, help=help)
        self.choices = list(choices)

    def validate(self, value: Any) -> Any:
        if value not in self.choices:
            raise ParamError(self.name, f"must be one of {self.choices}, got {value!r}")
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"enum": self.choices, "default": self.default}
        if self.help:
            out["description"] = self.help
        return out


class BoolParam(Param):
    """True or false."""

    json_type = "boolean"

    def validate(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ParamError(self.name, f"must be true or false, got {value!r}")
        return value
