"""SQLModel tables and their API schemas, one family per entity (``RunBase``, ``RunCreate``,
``Run``, ``RunPublic``). Importing this package registers every table on ``SQLModel.metadata``."""

from tradefleet.models.order import (  # noqa: F401
    LIVE_PENDING,
    ORDER_FINAL,
    Fill,
    FillPublic,
    Order,
    OrderPublic,
    OrderReason,
    OrderSide,
    OrderStatus,
    OrderType,
    Trade,
    TradePublic,
    TradeStatus,
)
from tradefleet.models.run import (  # noqa: F401
    EquitySnapshot,
    EquitySnapshotPublic,
    EventLevel,
    Run,
    RunCreate,
    RunEvent,
    RunEventPublic,
    RunMode,
    RunPublic,
    RunsPublic,
    RunStatus,
)
from tradefleet.models.backtest import Backtest, BacktestCreate, BacktestDownload, BacktestDetail, BacktestPublic, BacktestsPublic, BacktestStatus  # noqa: F401
from tradefleet.models.candle import StoredCandle  # noqa: F401
from tradefleet.models.market import ExchangeMarket, ExchangeMarketPublic  # noqa: F401
from tradefleet.models.system import WorkerHeartbeat  # noqa: F401
from tradefleet.models.user import (  # noqa: F401
    MfaRequired,
    Role,
    Token,
    User,
    UserAdminUpdate,
    UserCreate,
    UserPublic,
    UserMeUpdate,
    UsersPublic,
)
from tradefleet.models.auth import OneTimeToken, RecoveryCode, RefreshToken, TokenPurpose  # noqa: F401
from tradefleet.models.audit import AuditEvent, AuditEventPublic, AuditEventsPublic  # noqa: F401
from tradefleet.models.system import HaltPublic, HaltUpdate, TradingHalt  # noqa: F401
from tradefleet.models.exchange_account import (  # noqa: F401
    ExchangeAccount,
    ExchangeAccountCreate,
    ExchangeAccountPublic,
    ExchangeAccountsPublic,
    ExchangeAccountUpdate,
    KeyCheckStatus,
)
from tradefleet.models.live import LiveEvent, StrategySetting  # noqa: F401
from tradefleet.models.strategy_version import (  # noqa: F401
    ReviewReject,
    RunVersionMove,
    StrategySource,
    StrategyVersion,
    StrategyVersionAdmin,
    StrategyVersionDetail,
    StrategyVersionListed,
    StrategyVersionPublic,
    StrategyVersionsAdmin,
    StrategyVersionsPublic,
    VersionOrigin,
    VersionStatus,
)
