"""The wire format (:mod:`tradefleet.sandbox.protocol`) over real pipes, and the parent's checks of what a
runner answers (:mod:`tradefleet.sandbox.proxy`), with real sandboxed runners whose strategy writes
forged replies straight onto the reply pipe (a runner is untrusted: its strategy owns the process)."""

from __future__ import annotations

import json
import os
import struct
import threading

import numpy as np
import pandas as pd
import pytest

from tradefleet.execution.account import CandleAccount
from tradefleet.execution.paper import MarketRules, Wallet
from tradefleet.sandbox import load_strategy, runner_pool
from tradefleet.sandbox.protocol import DTYPES, Limits, ProtocolError, encode, read_frame, write_frame
from tradefleet.strategy.context import Candle, CandleContext, RunLogger
from tradefleet.strategy.guard import StrategyError

# --------------------------------------------------------------------------------------- the format


class Pipe:
    """A pipe whose read end counts the bytes taken from it."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self.taken = 0

    def read(self, fd: int, n: int) -> bytes:
        chunk = os.read(fd, n)
        self.taken += len(chunk)
        return chunk

    def send(self, data: bytes, *, close: bool = False) -> None:
        # A thread writes, so frames larger than the pipe's buffer go through too.
        def write() -> None:
            write_frame(self.w, data)
            if close:
                os.close(self.w)

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        self.thread = thread

    def frame(self, limits: Limits = Limits()):
        return read_frame(self.r, limits, read=self.read)

    def close(self) -> None:
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def pipe():
    p = Pipe()
    yield p
    p.close()


def raw(header_text: str, body: bytes = b"") -> bytes:
    data = header_text.encode()
    return struct.pack(">I", len(data)) + data + body


def test_round_trip_of_every_dtype(pipe):
    arrays = {"time_ms": np.array([1704067200000, 1704067260000], dtype="<i8"),
              "close": np.array([42000.5, np.nan], dtype="<f8"),  # NaN travels in arrays, not in headers
              "e0": np.array([0, 1, 2, 3], dtype="|u1"), "empty": np.empty(0, dtype="<f8")}
    header = {"op": "signals", "items": [{"params": {"fast": 5}, "start": 0, "stop": 2}], "text": "ünïcode"}
    pipe.send(encode(header, arrays))
    got, out = pipe.frame()
    assert got == header
    assert list(out) == list(arrays)
    for name, array in arrays.items():
        assert out[name].dtype == array.dtype
        np.testing.assert_array_equal(out[name], array)


def test_a_large_frame_in_many_reads(pipe):
    big = np.arange(3_000_000, dtype="<i8")  # 24 MB: far more than a pipe holds at once
    pipe.send(encode({"ok": True}, {"big": big}))
    _, out = pipe.frame()
    np.testing.assert_array_equal(out["big"], big)


def test_header_over_the_cap_is_refused_before_its_body_is_read(pipe):
    os.write(pipe.w, struct.pack(">I", 2 << 20) + b"{" * 1000)
    with pytest.raises(ProtocolError, match=r"header of 2097152 bytes exceeds the cap of 1048576"):
        pipe.frame()
    assert pipe.taken == 4  # the length only


def test_arrays_over_the_cap_are_refused_before_their_bytes_are_read(pipe):
    header = json.dumps({"ok": True, "arrays": [["e0", "|u1", 1000], ["x0", "|u1", 8 << 30]]})
    os.write(pipe.w, raw(header, b"\1" * 4096))
    with pytest.raises(ProtocolError, match=r"arrays exceed the cap of 1048576 bytes"):
        pipe.frame(Limits(array_bytes=1 << 20))
    assert pipe.taken == 4 + len(header)  # not one array byte


@pytest.mark.parametrize("spec", [["a", "<f4", 1], ["a", "|O", 1], ["a", "<U10", 1], ["a", ">f8", 1],
                                  ["a", "<f8", -1], ["a", "<f8", True], ["a", "<f8", 1.5], [1, "<f8", 1],
                                  ["a", "<f8"], "a"],
                         ids=["float32", "object", "unicode", "big-endian", "negative", "bool-length",
                              "float-length", "name-not-text", "two-fields", "not-a-list"])
def test_bad_array_specs_are_refused(pipe, spec):
    os.write(pipe.w, raw(json.dumps({"ok": True, "arrays": [spec]}), b"\0" * 64))
    with pytest.raises(ProtocolError, match="bad array spec"):
        pipe.frame()


@pytest.mark.parametrize("array", [np.zeros(3, dtype="<f4"), np.array(["x"], dtype=object),
                                   np.zeros((2, 2), dtype="<f8"), np.array(["ab"])],
                         ids=["float32", "object", "two-dimensional", "unicode"])
def test_encode_refuses_what_may_not_travel(array):
    with pytest.raises(ProtocolError, match="cannot be sent"):
        encode({"ok": True}, {"a": array})


def test_encode_refuses_nan_in_a_header():
    with pytest.raises(ValueError):
        encode({"value": float("nan")})


@pytest.mark.parametrize("header, match", [
    ('{"value": NaN}', "not JSON"), ('{"value": Infinity}', "not JSON"), ('{"value": -Infinity}', "not JSON"),
    ('{"value": 1e999}', "not JSON"), ("[1, 2]", "not a JSON object"), ("not json", "not JSON"),
    ("\"text\"", "not a JSON object"), ('{"arrays": {"a": 1}}', "arrays is not a list"),
    ("[" * 300_000 + "]" * 300_000, "nested too deeply"),
], ids=["nan", "infinity", "minus-infinity", "overflow", "list", "garbage", "string", "arrays-dict", "deep"])
def test_bad_headers_are_refused(pipe, header, match):
    pipe.send(raw(header))
    with pytest.raises(ProtocolError, match=match):
        pipe.frame()


def test_bad_utf8_header_is_refused(pipe):
    os.write(pipe.w, struct.pack(">I", 4) + b"\xff\xfe\xfd\xfc")
    with pytest.raises(ProtocolError, match="not JSON"):
        pipe.frame()


def test_empty_channel_is_closed(pipe):
    os.close(pipe.w)
    with pytest.raises(ProtocolError, match="^channel closed$"):
        pipe.frame()


@pytest.mark.parametrize("cut", ["length", "header", "arrays"])
def test_truncated_frames_are_refused(pipe, cut):
    frame = encode({"ok": True}, {"a": np.arange(100, dtype="<i8")})
    header_len = struct.unpack(">I", frame[:4])[0]
    keep = {"length": 2, "header": 4 + header_len // 2, "arrays": len(frame) - 8}[cut]
    pipe.send(frame[:keep], close=True)
    with pytest.raises(ProtocolError, match="closed the channel mid-frame"):
        pipe.frame()


def test_the_dtypes_are_the_documented_three():
    assert set(DTYPES) == {"<f8", "<i8", "|u1"}


# --------------------------------------------------------------------------------------- the proxy

FORGER = '''
import fcntl
import json
import os
import stat
import struct
import time

import numpy as np

from tradefleet.strategy import Strategy


def reply_fd():
    for fd in range(3, 64):
        try:
            mode, flags = os.fstat(fd).st_mode, fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            continue
        if stat.S_ISFIFO(mode) and flags & os.O_ACCMODE == os.O_WRONLY:
            return fd
    raise RuntimeError("no reply pipe")


def forge(header_text, arrays=()):
    body = header_text.encode()
    os.write(reply_fd(), struct.pack(">I", len(body)) + body + b"".join(a.tobytes() for a in arrays))
    time.sleep(3600)  # its own reply never comes


class Forger(Strategy):
    """Answers with a forged reply."""

    timeframe = "1m"

    def {hook}(self, arg):
        n = len(arg) if hasattr(arg, "__len__") else 0
        {body}
'''


def forger(hook: str, body: str, tag: str):
    source = FORGER.replace("{hook}", hook).replace("{body}", body).replace('"""Answers', f'"""{tag}: answers')
    return load_strategy(source.encode(), label=f"forger_{tag}.py", trusted=False)


def window(n: int = 30) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC", name="time")
    frame = pd.DataFrame({c: np.linspace(100, 110, n) for c in ("open", "high", "low", "close", "volume")},
                         index=index)
    frame["time_ms"] = index.as_unit("ms").asi8
    return frame


def signals_reply(items: str, arrays: str) -> str:
    return (f'spec = {arrays}\n        header = {{"ok": True, "items": {items}, '
            f'"arrays": [[k, a.dtype.str, len(a)] for k, a in spec]}}\n'
            f'        forge(json.dumps(header), [a for _, a in spec])')


SIGNAL_FORGERIES = [
    ("short", '[{"ok": True, "logs": [], "bad": {}}]',
     '[("e0", np.zeros(n - 1, "|u1")), ("x0", np.zeros(n, "|u1"))]', r"enter_long codes of the wrong shape"),
    ("float-codes", '[{"ok": True, "logs": [], "bad": {}}]',
     '[("e0", np.zeros(n, "<f8")), ("x0", np.zeros(n, "|u1"))]', r"enter_long codes of the wrong shape"),
    ("missing-codes", '[{"ok": True, "logs": [], "bad": {}}]',
     '[("x0", np.zeros(n, "|u1"))]', r"enter_long codes of the wrong shape"),
    ("out-of-range", '[{"ok": True, "logs": [], "bad": {}}]',
     '[("e0", np.full(n, 7, "|u1")), ("x0", np.zeros(n, "|u1"))]', r"enter_long codes out of range"),
    ("too-many-logs", '[{"ok": True, "logs": [["info", "x"]] * 101, "bad": {}}]',
     '[("e0", np.zeros(n, "|u1")), ("x0", np.zeros(n, "|u1"))]', r"invalid reply \(log lines\)"),
    ("bad-log-level", '[{"ok": True, "logs": [["critical", "x"]], "bad": {}}]',
     '[("e0", np.zeros(n, "|u1")), ("x0", np.zeros(n, "|u1"))]', r"invalid reply \(log line\)"),
    ("log-not-text", '[{"ok": True, "logs": [["info", {"a": 1}]], "bad": {}}]',
     '[("e0", np.zeros(n, "|u1")), ("x0", np.zeros(n, "|u1"))]', r"invalid reply \(log line\)"),
    ("bad-not-a-dict", '[{"ok": True, "logs": [], "bad": [1]}]',
     '[("e0", np.zeros(n, "|u1")), ("x0", np.zeros(n, "|u1"))]', r"invalid reply: .*bad values"),
    ("two-items-for-one", '[{"ok": True, "logs": [], "bad": {}}] * 2',
     '[("e0", np.zeros(n, "|u1")), ("x0", np.zeros(n, "|u1"))]', r"invalid signals reply"),
    ("items-not-a-list", '"all good"', '[]', r"invalid signals reply"),
]


@pytest.mark.parametrize("tag, items, arrays, match", SIGNAL_FORGERIES, ids=[f[0] for f in SIGNAL_FORGERIES])
def test_forged_signal_replies_are_refused_and_the_runner_stopped(sandbox_available, settings_env, tag, items, arrays, match):
    settings_env(STRATEGY_TIMEOUT_S=3)
    proxy = forger("signals", signals_reply(items, arrays), tag)
    with pytest.raises(StrategyError, match=match):
        proxy({}).signals(window())
    runner = runner_pool().runners[proxy.content_hash]
    assert not runner.alive  # a runner that sent an invalid reply is never asked again
    assert proxy.validate_params({}) == {}  # a fresh one answers the next call


def test_a_reply_with_nan_in_its_header_stops_the_runner(sandbox_available, settings_env):
    settings_env(STRATEGY_TIMEOUT_S=3)
    body = ('forge(\'{"ok": true, "items": [{"ok": true, "logs": [], "bad": {}}], "arrays": [], '
            '"x": NaN}\')')
    proxy = forger("signals", body, "nan")
    with pytest.raises(StrategyError, match=r"runner failed: it sent an invalid reply \(header is not JSON"):
        proxy({}).signals(window())
    assert not runner_pool().runners[proxy.content_hash].alive


def context(frame: pd.DataFrame) -> CandleContext:
    account = CandleAccount(MarketRules(taker=0.001), wallet=Wallet(cash=1000.0))
    last = frame.iloc[-1]
    candle = Candle(int(last["time_ms"]), *(float(last[c]) for c in ("open", "high", "low", "close", "volume")))
    return CandleContext(account=account, candle=candle, candles=frame, state={}, log=RunLogger("forger"))


ORDER_FORGERIES = [
    ("eleven-orders", '{"ok": True, "orders": [["buy", 1.0]] * 11, "logs": [], "state": {}}',
     r"invalid reply: orders or state"),
    ("unknown-side", '{"ok": True, "orders": [["withdraw", 1.0]], "logs": [], "state": {}}', r"invalid reply: order"),
    ("amount-text", '{"ok": True, "orders": [["buy", "all"]], "logs": [], "state": {}}',
     r"invalid reply \(order amount\)"),
    ("amount-bool", '{"ok": True, "orders": [["sell", True]], "logs": [], "state": {}}',
     r"invalid reply \(order amount\)"),
    ("buy-without-amount", '{"ok": True, "orders": [["buy", None]], "logs": [], "state": {}}',
     r"invalid reply \(order amount\)"),
    ("state-list", '{"ok": True, "orders": [], "logs": [], "state": [1, 2]}', r"invalid reply: orders or state"),
    ("orders-dict", '{"ok": True, "orders": {"buy": 1}, "logs": [], "state": {}}', r"invalid reply: orders or state"),
    ("too-many-logs", '{"ok": True, "orders": [], "logs": [["info", "x"]] * 101, "state": {}}',
     r"invalid reply: .*log lines"),
]


@pytest.mark.parametrize("tag, reply, match", ORDER_FORGERIES, ids=[f[0] for f in ORDER_FORGERIES])
def test_forged_on_candle_replies_are_refused_and_nothing_is_ordered(sandbox_available, settings_env, tag, reply, match):
    settings_env(STRATEGY_TIMEOUT_S=3)
    proxy = forger("on_candle", f"forge(json.dumps({{**{reply}, 'arrays': []}}))", f"oc_{tag}")
    frame = window()
    ctx = context(frame)
    with pytest.raises(StrategyError, match=match):
        proxy.on_candle({}, ctx, None)
    assert ctx._account.pending == [] and ctx.state == {}  # nothing of the forged reply was applied
    assert not runner_pool().runners[proxy.content_hash].alive


def test_a_forged_buy_above_the_cash_is_refused_by_the_parent(sandbox_available, settings_env):
    settings_env(STRATEGY_TIMEOUT_S=3)
    proxy = forger("on_candle", "forge(json.dumps({'ok': True, 'orders': [['buy', 1e15]], 'logs': [], "
                                "'state': {}, 'arrays': []}))", "oc_rich")
    ctx = context(window())
    with pytest.raises(ValueError, match=r"buy of 1e\+15 exceeds the cash 1000"):
        proxy.on_candle({}, ctx, None)
    assert ctx._account.pending == []


def test_the_runner_frames_candles_with_the_platform_columns():
    """The runner, which sees only the SDK and its own modules, writes the candle columns out: they
    must be the platform's, in its order."""
    from tradefleet.models.candle import OHLCV_COLUMNS
    from tradefleet.sandbox import runner

    assert runner.OHLCV == OHLCV_COLUMNS
