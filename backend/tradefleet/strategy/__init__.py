"""The author-facing SDK: subclass :class:`Strategy`, declare typed parameters, write ``signals``."""

from tradefleet.strategy.base import INTERFACE_VERSION, SIGNAL_COLUMNS, Strategy
from tradefleet.strategy.params import BoolParam, CategoricalParam, DecimalParam, IntParam, Param, ParamError

__all__ = [
    "INTERFACE_VERSION",
    "SIGNAL_COLUMNS",
    "BoolParam",
    "CategoricalParam",
    "DecimalParam",
    "IntParam",
    "Param",
    "ParamError",
    "Strategy",
]
