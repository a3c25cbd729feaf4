"""The strategy registry (discovery, broken files, hot reload) and the typed parameters. No database."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tradefleet.config import REPO_ROOT
from tradefleet.strategy import (
    BoolParam,
    CategoricalParam,
    DecimalParam,
    IntParam,
    ParamError,
    Strategy,
)
from tradefleet.market.candles import frame_from_ohlcv
from tradefleet.sandbox import StrategyProxy
from tradefleet.strategy.guard import StrategyError
from tradefleet.sandbox.registry import StrategyRegistry, UnknownStrategy

BROKEN_DIR = Path(__file__).parent / "strategies_broken"
GOOD_DIR = REPO_ROOT / "strategies"

BROKEN_FILES = ["syntax_error.py", "import_error.py", "no_signals.py", "bad_default.py"]
DUPLICATES = ["duplicate_a.py", "duplicate_b.py"]

GOOD_STRATEGY = '''
from tradefleet.strategy import IntParam, Strategy


class {cls}(Strategy):
    """{doc}"""

    length = IntParam({default}, low=1, high=50)

    def signals(self, candles):
        return candles.assign(enter_long=False, exit_long=False)
'''


def write_strategy(path: Path, cls: str, doc: str = "A test strategy.", default: int = 5) -> None:
    path.write_text(GOOD_STRATEGY.format(cls=cls, doc=doc, default=default))


def touch_later(path: Path) -> None:
    """Move the file's mtime clearly forward (coarse filesystem clocks must not hide an edit)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A strategies folder holding the platform's good strategies and every broken test file."""
    for src in GOOD_DIR.glob("*.py"):
        shutil.copy(src, tmp_path / src.name)
    for name in [*BROKEN_FILES, *DUPLICATES, "raises_in_signals.py"]:
        shutil.copy(BROKEN_DIR / name, tmp_path / name)
    return tmp_path


@pytest.fixture
def registry(folder: Path) -> StrategyRegistry:
    reg = StrategyRegistry(folder)
    reg.refresh()
    return reg


# --- discovery and broken files ------------------------------------------------------------------


def test_good_strategies_load_next_to_broken_files(registry: StrategyRegistry):
    names = [k.name for k in registry.all()]
    shipped = sorted(p.stem for p in GOOD_DIR.glob("*.py"))
    assert names == sorted(["duplicate_name", "raises_in_signals", *shipped])  # sorted
    sma = registry.get("sma_cross")
    assert isinstance(sma, StrategyProxy) and sma.sandboxed and sma.__name__ == "SmaCross"
    assert sma.validate_params({}) == {"fast": 10, "slow": 30}
    assert registry.get("rsi_reversion").__name__ == "RsiReversion"
    with pytest.raises(UnknownStrategy):
        registry.get("no_signals")
    with pytest.raises(UnknownStrategy):
        registry.get("bad_default")


def test_broken_reports_each_file_with_a_useful_error(registry: StrategyRegistry):
    broken = {b.path: b.error for b in registry.broken()}

    assert set(broken) == {*BROKEN_FILES, "duplicate_b.py"}
    assert "SyntaxError: expected ':'" in broken["syntax_error.py"]
    assert "line 7" in broken["syntax_error.py"]  # the line of the missing colon
    assert broken["import_error.py"].startswith("ModuleNotFoundError")
    assert "tradefleet_no_such_module" in broken["import_error.py"]
    assert "NoSignals implements neither signals() nor on_candle()" in broken["no_signals.py"]
    assert "period" in broken["bad_default.py"] and "500" in broken["bad_default.py"]
    assert "between 2 and 100" in broken["bad_default.py"]
    dup = broken["duplicate_b.py"]
    assert "duplicate strategy name 'duplicate_name'" in dup
    assert "DuplicateA" in dup and "duplicate_a.py" in dup
    # the first definition (by file name) wins
    assert registry.get("duplicate_name").__name__ == "DuplicateA"


def test_a_file_without_any_strategy_is_reported(tmp_path: Path):
    (tmp_path / "helpers.py").write_text("X = 1\n")
    reg = StrategyRegistry(tmp_path)
    reg.refresh()
    assert reg.all() == []
    [(path, error)] = [(b.path, b.error) for b in reg.broken()]
    assert path == "helpers.py" and "defines no Strategy subclass" in error


def test_underscore_and_non_python_files_are_ignored(tmp_path: Path):
    write_strategy(tmp_path / "_private.py", "Private")
    (tmp_path / "notes.txt").write_text("not a strategy")
    write_strategy(tmp_path / "kept.py", "Kept")
    reg = StrategyRegistry(tmp_path)
    reg.refresh()
    assert [k.name for k in reg.all()] == ["kept"]
    assert reg.broken() == [] and reg.imports == 1


def test_a_broken_strategy_does_not_break_its_good_neighbours_in_the_same_file(tmp_path: Path):
    # One file, two classes: refused (a file is one strategy version, so it holds exactly one class).
    (tmp_path / "mixed.py").write_text(
        GOOD_STRATEGY.format(cls="Fine", doc="ok", default=5)
        + "\n\nclass Unfinished(Strategy):\n    pass\n"
    )
    reg = StrategyRegistry(tmp_path)
    reg.refresh()
    assert reg.all() == []
    assert "mixed.py defines 2 Strategy subclasses (Fine, Unfinished)" in reg.broken()[0].error


def test_raises_in_signals_loads_and_fails_only_when_called(registry: StrategyRegistry):
    klass = registry.get("raises_in_signals")
    strategy = klass(klass.validate_params({}))
    assert strategy.startup_candles == 2 and strategy.required_candles() == 3
    candles = frame_from_ohlcv([[60_000 * i, 1.0, 1.0, 1.0, 1.0, 1.0] for i in range(3)])
    # The strategy raised in its runner; the parent gets the reason, never the exception object.
    with pytest.raises(StrategyError, match="raised RuntimeError: deliberate failure"):
        strategy.signals(candles)


# --- hot reload ----------------------------------------------------------------------------------


def test_refresh_does_not_execute_unchanged_files_again(registry: StrategyRegistry, folder: Path):
    files = len(list(folder.glob("*.py")))
    assert registry.imports == files  # every file executed exactly once, broken ones included
    before = {k.name: k for k in registry.all()}

    for _ in range(3):
        registry.refresh()

    assert registry.imports == files
    assert {k.name: k for k in registry.all()} == before  # the very same class objects


def test_editing_a_file_reimports_only_that_file(registry: StrategyRegistry, folder: Path):
    imports = registry.imports
    old_rsi = registry.get("rsi_reversion")
    old_sma = registry.get("sma_cross")
    path = folder / "sma_cross.py"
    path.write_text(path.read_text().replace("IntParam(10, low=2", "IntParam(12, low=2"))
    touch_later(path)

    registry.refresh()

    assert registry.imports == imports + 1
    new_sma = registry.get("sma_cross")
    assert new_sma is not old_sma
    assert new_sma.validate_params({})["fast"] == 12
    assert registry.get("rsi_reversion") is old_rsi  # not re-executed


def test_an_edit_that_breaks_a_file_then_fixes_it(registry: StrategyRegistry, folder: Path):
    path = folder / "rsi_reversion.py"
    good = path.read_text()
    path.write_text(good.replace("def signals(self, candles):", "def signals(self, candles)"))
    touch_later(path)
    registry.refresh()
    assert "rsi_reversion" not in [k.name for k in registry.all()]
    assert any(b.path == "rsi_reversion.py" and "SyntaxError" in b.error for b in registry.broken())

    path.write_text(good)
    touch_later(path)
    registry.refresh()
    assert registry.get("rsi_reversion").validate_params({})["period"] == 14
    assert "rsi_reversion.py" not in [b.path for b in registry.broken()]


def test_fixing_a_broken_file_makes_it_load(registry: StrategyRegistry, folder: Path):
    path = folder / "bad_default.py"
    path.write_text(path.read_text().replace("IntParam(500,", "IntParam(50,"))
    touch_later(path)
    imports = registry.imports

    registry.refresh()

    assert registry.imports == imports + 1
    assert registry.get("bad_default").validate_params({}) == {"period": 50}
    assert "bad_default.py" not in [b.path for b in registry.broken()]


def test_a_new_file_is_picked_up(registry: StrategyRegistry, folder: Path):
    imports = registry.imports
    write_strategy(folder / "brand_new.py", "BrandNew", doc="Freshly added.")

    registry.refresh()

    assert registry.imports == imports + 1
    klass = registry.get("brand_new")
    assert klass.description() == "Freshly added."
    assert klass.validate_params({}) == {"length": 5}


def test_a_deleted_file_is_forgotten(registry: StrategyRegistry, folder: Path):
    imports = registry.imports
    (folder / "sma_cross.py").unlink()
    (folder / "syntax_error.py").unlink()

    registry.refresh()

    assert registry.imports == imports  # deleting executes nothing
    with pytest.raises(UnknownStrategy):
        registry.get("sma_cross")
    assert "syntax_error.py" not in [b.path for b in registry.broken()]
    assert registry.get("rsi_reversion").name == "rsi_reversion"


def test_deleting_the_first_duplicate_promotes_the_second(registry: StrategyRegistry, folder: Path):
    (folder / "duplicate_a.py").unlink()
    registry.refresh()
    assert registry.get("duplicate_name").__name__ == "DuplicateB"
    assert not [b for b in registry.broken() if b.path.startswith("duplicate_")]


def test_deleting_every_file_empties_the_registry(registry: StrategyRegistry, folder: Path):
    for path in folder.glob("*.py"):
        path.unlink()
    registry.refresh()
    assert registry.all() == [] and registry.broken() == []


# --- parameters ----------------------------------------------------------------------------------


class Demo(Strategy):
    """Exercises every parameter type."""

    length = IntParam(10, low=2, high=100, step=2, help="a length")
    ratio = DecimalParam(0.5, low=0.0, high=1.0, step=0.05, help="a ratio")
    side = CategoricalParam("long", choices=["long", "short", 3])
    enabled = BoolParam(True, help="on or off")

    def signals(self, candles):
        return candles.assign(enter_long=False, exit_long=False)


def test_int_param():
    p = Demo.parameters()["length"]
    assert p.name == "length"
    assert p.validate(2) == 2 and p.validate(100) == 100
    assert p.validate(12.0) == 12 and isinstance(p.validate(12.0), int)
    for bad, words in [(0, "between 2 and 100"), (101, "between 2 and 100"), (11, "multiple of 2"),
                       (True, "integer, got bool"), ("10", "integer, got str"), (10.5, "integer"),
                       (None, "integer, got NoneType"), (float("nan"), "integer"), (float("inf"), "integer"),
                       ([10], "integer, got list")]:
        with pytest.raises(ParamError) as info:
            p.validate(bad)
        assert info.value.field == "length" and words in info.value.message, bad


def test_decimal_param():
    p = Demo.parameters()["ratio"]
    assert p.validate(0) == 0.0 and isinstance(p.validate(0), float)
    assert p.validate(1) == 1.0 and p.validate(0.25) == 0.25
    for bad, words in [(-0.01, "between"), (1.5, "between"), (True, "number, got bool"),
                       ("0.5", "number, got str"), (None, "number"), (float("nan"), "finite"),
                       (float("inf"), "finite"), (-math.inf, "finite")]:
        with pytest.raises(ParamError) as info:
            p.validate(bad)
        assert info.value.field == "ratio" and words in info.value.message, bad


def test_categorical_param():
    p = Demo.parameters()["side"]
    assert p.validate("short") == "short" and p.validate(3) == 3
    for bad in ["LONG", "", None, 4, ["long"]]:
        with pytest.raises(ParamError) as info:
            p.validate(bad)
        assert info.value.field == "side" and "must be one of" in info.value.message


def test_bool_param():
    p = Demo.parameters()["enabled"]
    assert p.validate(True) is True and p.validate(False) is False
    for bad in [1, 0, "true", None]:
        with pytest.raises(ParamError) as info:
            p.validate(bad)
        assert info.value.field == "enabled" and "true or false" in info.value.message


def test_number_param_with_low_above_high_is_refused():
    with pytest.raises(ParamError, match="low 10 is above high 5"):
        IntParam(7, low=10, high=5)


def test_params_schema_shape():
    schema = Demo.params_schema()
    assert schema == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "length": {"type": "integer", "default": 10, "minimum": 2, "maximum": 100, "x-step": 2,
                       "description": "a length"},
            "ratio": {"type": "number", "default": 0.5, "minimum": 0.0, "maximum": 1.0, "x-step": 0.05,
                      "description": "a ratio"},
            "side": {"enum": ["long", "short", 3], "default": "long"},
            "enabled": {"type": "boolean", "default": True, "description": "on or off"},
        },
    }
    assert list(schema["properties"]) == ["length", "ratio", "side", "enabled"]  # declaration order


def test_validate_params_fills_defaults_and_rejects_unknown_names():
    assert Demo.validate_params(None) == {"length": 10, "ratio": 0.5, "side": "long", "enabled": True}
    assert Demo.validate_params({"length": 20, "enabled": False}) == {
        "length": 20, "ratio": 0.5, "side": "long", "enabled": False}
    with pytest.raises(ParamError) as info:
        Demo.validate_params({"lenght": 20})
    assert info.value.field == "lenght" and info.value.message == "unknown parameter"


def test_instance_attributes_read_the_run_values():
    strategy = Demo(Demo.validate_params({"length": 4}))
    assert strategy.length == 4 and strategy.ratio == 0.5 and strategy.enabled is True
    assert isinstance(Demo.length, IntParam)  # on the class, the declaration


def test_check_params_rule_between_parameters():
    sma = StrategyRegistry(GOOD_DIR)
    sma.refresh()
    klass = sma.get("sma_cross")
    with pytest.raises(ParamError) as info:
        klass.validate_params({"fast": 30})
    assert info.value.field == "fast" and "below slow (30)" in info.value.message
    assert klass.validate_params({"fast": 29}) == {"fast": 29, "slow": 30}
