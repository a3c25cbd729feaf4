"""Binance-format errors of the simulator.

Binance answers a rejected request with an HTTP 4xx status and ``{"code": <negative int>, "msg": ...}``;
ccxt maps ``code`` to an exception class (``binance.describe()["exceptions"]["exact"]``, e.g. -1121 ->
``BadSymbol``, -1120/-1100/-1102 -> ``BadRequest``). Source of codes and texts:
https://developers.binance.com/docs/binance-spot-api-docs/errors
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse


class BinanceAPIError(Exception):
    """Raise from any sim endpoint to answer ``status`` with ``{"code": code, "msg": msg}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def invalid_symbol() -> BinanceAPIError:
    """-1121, ccxt ``BadSymbol``."""
    return BinanceAPIError(-1121, "Invalid symbol.")


def invalid_interval() -> BinanceAPIError:
    """-1120, ccxt ``BadRequest``."""
    return BinanceAPIError(-1120, "Invalid interval.")


def mandatory_param(name: str) -> BinanceAPIError:
    """-1102, ccxt ``BadRequest``."""
    return BinanceAPIError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal_chars(name: str, legal: str) -> BinanceAPIError:
    """-1100, ccxt ``BadRequest``."""
    return BinanceAPIError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def bad_combination() -> BinanceAPIError:
    """-1128, ccxt ``BadRequest``."""
    return BinanceAPIError(-1128, "Combination of optional parameters invalid.")


def invalid_param(name: str) -> BinanceAPIError:
    """-1130, ccxt ``BadRequest``."""
    return BinanceAPIError(-1130, f"Data sent for parameter '{name}' is not valid.")


async def binance_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette exception handler turning :class:`BinanceAPIError` into Binance's error reply."""
    assert isinstance(exc, BinanceAPIError)
    return JSONResponse({"code": exc.code, "msg": exc.msg}, status_code=exc.status)
