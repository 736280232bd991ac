"""``/api/v3`` endpoints: Binance's weights, parameters, error bodies and rate-limit headers.

``exchangeInfo`` lists every symbol the exchange knows (``Market.listed``: a delisted one stays, in status BREAK,
until removed), each with its status now (TRADING, HALT, BREAK); ``symbol`` / ``symbols`` pick some (an unknown one:
-1121), ``symbolStatus`` keeps those of one status. A symbol listed while running has a kline for its listing
minute (it holds the first trade); klines of a halted or delisted symbol's minutes have no trade."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from binance_simulator import endpoints, payloads
from binance_simulator.endpoints import (
    AGG_TRADES_MAX_WINDOW_MS,
    DEFAULT_LIMIT,
    LEGAL_SYMBOL_PARAMETER,
    MAX_LIMIT,
    MINUTE_MS,
)
from binance_simulator.faults import Faults
from binance_simulator.market import Market, units_to_decimal
from binance_simulator.rate_limits import RequestWeightLimiter

INTERVALS_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}
STATUSES = ("TRADING", "HALT", "BREAK")
SERVER_ERROR_BODIES = {
    500: (-1001, "Internal error; unable to process your request. Please try again."),
    502: (-1001, "Internal error; unable to process your request. Please try again."),
    503: (-1008, "Server is currently overloaded with other requests. Please try again in a few minutes."),
    504: (-1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."),
}


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]


class ApiError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400):
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


class RestApi:
    def __init__(self, market: Market, limiter: RequestWeightLimiter, faults: Faults, clock: Callable[[], int]):
        self.market = market
        self.limiter = limiter
        self.faults = faults
        self.clock = clock
        self._routes = {
            endpoints.PING: self._ping,
            endpoints.TIME: self._time,
            endpoints.EXCHANGE_INFO: self._exchange_info,
            endpoints.TRADES: self._trades,
            endpoints.HISTORICAL_TRADES: self._historical_trades,
            endpoints.AGG_TRADES: self._agg_trades,
            endpoints.KLINES: self._klines,
        }

    def handle(self, method: str, path: str, params: dict[str, str], ip: str) -> Response:
        now = self.clock()
        route = self._routes.get(path)
        if route is None:
            return Response(404, payloads.error_body(-1000, f"Unknown endpoint {path}."), {})
        if method != "GET":
            return Response(405, payloads.error_body(-1000, f"{method} is not supported on {path}."), {})
        injected = self.faults.take_rest_error(now)
        if injected:
            code, msg = SERVER_ERROR_BODIES.get(injected, (-1000, "An unknown error occurred."))
            return Response(injected, payloads.error_body(code, msg), {})
        decision = self.limiter.charge(ip, endpoints.REST_WEIGHTS[path], now, self.faults.storm_retry_after(now))
        headers = {"X-MBX-USED-WEIGHT": str(decision.used_weight), "X-MBX-USED-WEIGHT-1M": str(decision.used_weight)}
        if decision.status == 429:
            headers["Retry-After"] = str(decision.retry_after_s)
            return Response(
                429,
                payloads.error_body(
                    -1003,
                    f"Too much request weight used; current limit is {self.limiter.weight_per_minute} request "
                    "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
                ),
                headers,
            )
        if decision.status == 418:
            headers["Retry-After"] = str(decision.retry_after_s)
            return Response(
                418,
                payloads.error_body(
                    -1003,
                    f"Way too much request weight used; IP banned until {decision.banned_until_ms}. "
                    "Please use WebSocket Streams for live updates to avoid bans.",
                ),
                headers,
            )
        try:
            body = route(params, now)
        except ApiError as err:
            return Response(err.status, payloads.error_body(err.code, err.msg), headers)
        return Response(200, body, headers)

    # ---- endpoints ----------------------------------------------------------------------------------------------
    def _ping(self, params, now):
        return b"{}"

    def _time(self, params, now):
        return b'{"serverTime":%d}' % now

    def _exchange_info(self, params, now):
        if sum(p in params for p in ("symbol", "symbols", "symbolStatus")) > 1:
            raise ApiError(-1101, "Too many parameters; expected 'symbol', 'symbols' or 'symbolStatus'.")
        if "symbols" in params:
            try:
                wanted = json.loads(params["symbols"])
                assert isinstance(wanted, list) and all(isinstance(s, str) for s in wanted)
            except (ValueError, AssertionError):
                raise ApiError(
                    -1100,
                    "Illegal characters found in parameter 'symbols'; legal range is "
                    '\'^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$\'.',
                ) from None
            names = [self._symbol({"symbol": s}) for s in wanted]
        elif "symbol" in params:
            names = [self._symbol(params)]
        else:
            names = self.market.listed()
        status = params.get("symbolStatus")
        if status is not None:
            if status not in STATUSES:
                raise ApiError(-1100, f"Illegal value for 'symbolStatus'; expected one of {', '.join(STATUSES)}.")
            names = [n for n in names if self.market[n].status(now) == status]
        info = {
            "timezone": "UTC",
            "serverTime": now,
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": self.limiter.weight_per_minute,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(n, now) for n in names],
        }
        return json.dumps(info, separators=(",", ":")).encode()

    def _symbol_info(self, name: str, now: int) -> dict:
        cfg = self.market[name].cfg
        status = self.market[name].status(now)
        return {
            "symbol": name,
            "status": status,
            "baseAsset": cfg.base_asset or name.removesuffix(cfg.quote_asset),
            "baseAssetPrecision": 8,
            "quoteAsset": cfg.quote_asset,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "amendAllowed": True,
            "isSpotTradingAllowed": status == "TRADING",
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": units_to_decimal(cfg.min_price_units),
                    "maxPrice": units_to_decimal(cfg.max_price_units),
                    "tickSize": units_to_decimal(cfg.tick_units),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": units_to_decimal(cfg.min_qty_units),
                    "maxQty": units_to_decimal(cfg.max_qty_units),
                    "stepSize": units_to_decimal(cfg.step_units),
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
        }

    def _trades(self, params, now):
        name = self._symbol(params)
        return payloads.rest_trades(
            self.market[name].recent_trades(self._limit(params), now), self.faults.bad_values.get(name)
        )

    def _historical_trades(self, params, now):
        name = self._symbol(params)
        sym = self.market[name]
        limit = self._limit(params)
        from_id = self._int(params, "fromId")
        trades = sym.recent_trades(limit, now) if from_id is None else sym.trades_from_id(from_id, limit, now)
        return payloads.rest_trades(trades, self.faults.bad_values.get(name))

    def _agg_trades(self, params, now):
        sym = self.market[self._symbol(params)]
        limit = self._limit(params)
        from_id = self._int(params, "fromId")
        start, end = self._time_param(params, "startTime"), self._time_param(params, "endTime")
        if from_id is not None and (start is not None or end is not None):
            raise ApiError(
                -1128,
                "Combination of optional parameters invalid. Recommendation: 'fromId' cannot be "
                "sent together with 'startTime' or 'endTime'.",
            )
        if from_id is not None:
            return payloads.rest_agg_trades(sym.aggs_from_id(from_id, limit, now))
        if start is None and end is None:
            return payloads.rest_agg_trades(sym.recent_aggs(limit, now))
        if start is None:  # only endTime: the latest aggregates up to it
            return payloads.rest_agg_trades(sym.recent_aggs(limit, min(end, now)))
        if end is not None and end - start >= AGG_TRADES_MAX_WINDOW_MS:
            raise ApiError(-1127, "More than 1 hours between startTime and endTime.")
        end = now if end is None else min(end, now)
        if end < start:
            raise ApiError(
                -1128,
                "Combination of optional parameters invalid. Recommendation: 'startTime' must be before 'endTime'.",
            )
        return payloads.rest_agg_trades(sym.aggs_between(start, end + 1, limit))  # both bounds inclusive

    def _klines(self, params, now):
        sym = self.market[self._symbol(params)]
        interval = params.get("interval")
        if not interval:
            raise ApiError(-1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
        step = INTERVALS_MS.get(interval)
        if step is None:
            raise ApiError(-1120, "Invalid interval.")
        limit = self._limit(params)
        start, end = self._time_param(params, "startTime"), self._time_param(params, "endTime")
        # The first interval from the start of the history, or the one holding a listing made while running
        # (its origin is a second, not a minute): its kline holds the first trade.
        origin = sym.origin_ms - sym.origin_ms % min(step, MINUTE_MS)
        first_open = origin - origin % step + (step if origin % step else 0)
        last_open = min(now if end is None else end, now) // step * step
        if start is not None:
            opens = range(max(first_open, -(-start // step) * step), last_open + 1, step)[:limit]
        else:
            opens = range(max(first_open, last_open - (limit - 1) * step), last_open + 1, step)
        rows = [payloads.rest_kline_row(sym.kline(o, step, until_ms=now)) for o in opens]
        return json.dumps(rows, separators=(",", ":")).encode()

    # ---- parameters ---------------------------------------------------------------------------------------------
    def _symbol(self, params) -> str:
        symbol = params.get("symbol")
        if not symbol:
            raise ApiError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if not re.fullmatch(LEGAL_SYMBOL_PARAMETER[1:-1], symbol):
            raise ApiError(
                -1100, f"Illegal characters found in parameter 'symbol'; legal range is '{LEGAL_SYMBOL_PARAMETER}'."
            )
        if symbol not in self.market:
            raise ApiError(-1121, "Invalid symbol.")
        return symbol

    @staticmethod
    def _int(params, name: str) -> int | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return None
        if not re.fullmatch(r"-?[0-9]{1,20}", raw):
            raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
        return int(raw)

    def _time_param(self, params, name: str) -> int | None:
        value = self._int(params, name)
        if value is not None and value >= 10**15:  # 16 digits: microseconds
            value //= 1000
        return value

    def _limit(self, params) -> int:
        limit = self._int(params, "limit")
        if limit is None:
            return DEFAULT_LIMIT
        if limit <= 0:
            raise ApiError(-1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.")
        return min(limit, MAX_LIMIT)
