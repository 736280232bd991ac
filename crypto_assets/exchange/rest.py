"""Binance Spot REST client (public market data only). No Dagster imports.

- One keep-alive ``requests.Session`` per client (its connection pool is shared by the client's threads).
- Every request first acquires its endpoint's weight from a ``WeightBudget`` shared by the whole process (by
  default ``WeightBudget.for_host(<host of the first base URL>)``: a client's base URLs are taken to be mirrors of
  one exchange and share one budget). The limit comes from ``exchangeInfo.rateLimits``, fetched once, lazily,
  before the first request heavier than ping / time; every response's ``X-MBX-USED-WEIGHT-1M`` resyncs it.
- 429: every caller of the budget waits ``Retry-After``, then the request is sent again (at most
  ``max_rate_limit_waits`` times). 418: the budget is banned until ``Retry-After`` has passed; this call and every
  call before then raise ``ExchangeBanned`` without contacting the exchange.
- 5xx, timeouts and connection errors: the next base URL is tried at once; when every base URL has failed, the
  round is repeated after an exponential back-off with jitter, ``max_attempts`` rounds in all. Then
  ``ExchangeUnreachable`` (naming every URL) or, when the last answers were 5xx, ``ExchangeError``.
- Other 4xx raise ``ExchangeError`` at once (``UnknownSymbol`` from ``validate_symbols``).

Typed calls return the records of ``crypto_assets.exchange.models``; ``trades_between`` returns exactly the trades
of a time window, using ``aggTrades`` to find the window's first trade id and ``historicalTrades`` to page from it.
"""

from __future__ import annotations

import bisect
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from crypto_assets.backoff import Backoff
from crypto_assets.exchange import endpoints
from crypto_assets.exchange.endpoints import MAX_LIMIT
from crypto_assets.exchange.errors import (
    ExchangeBanned,
    ExchangeError,
    ExchangeUnreachable,
    UnknownSymbol,
    connection_reason,
    snippet,
)
from crypto_assets.exchange.models import (
    Kline,
    MalformedPayload,
    SymbolListing,
    Trade,
    parse_listings,
    parse_rest_agg_trades,
    parse_rest_klines,
    parse_rest_trades,
)
from crypto_assets.exchange.weight_budget import WeightBudget
from crypto_assets.minutes import MINUTE_MS, utc_text

SYMBOLS_PER_INFO_QUERY = 100  # symbols named in one exchangeInfo?symbols= query (about 1.5 KB of URL)

__all__ = ["BinanceRestClient", "ExchangeBanned", "ExchangeError", "ExchangeUnreachable", "UnknownSymbol"]

log = logging.getLogger(__name__)


@dataclass
class _Answer:
    url: str
    body: bytes
    response: requests.Response
    sent_local_ms: int
    received_local_ms: int


@dataclass(frozen=True)
class TradeWindow:
    first_id: int | None  # id of the window's first trade (None: the window has no trade so far)
    trades: list[Trade]  # the trades before end_ms, from first_id on, ascending by id
    next_trade: Trade | None  # the first trade at or after end_ms (None: not traded yet)


class BinanceRestClient:
    """A REST client for one exchange, given one base URL or several mirrors to fail over across.

    ``urgent``: the client may spend the budget's ``urgent_reserve`` (see ``WeightBudget.ceiling_for``);
    ``max_attempts``: rounds over all base URLs for 5xx / timeouts / connection errors (default 4);
    ``backoff_base_s`` / ``backoff_max_s``: the wait before round n+1 (``crypto_assets.backoff``, with jitter: base
    doubled per failed round, capped, the upper half of it at random); ``max_rate_limit_waits``: 429s waited out per
    call before giving up (default 20)."""

    def __init__(
        self,
        base_urls: str | Sequence[str],
        timeout: float = 10,
        *,
        budget: WeightBudget | None = None,
        max_attempts: int = 4,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 5.0,
        max_rate_limit_waits: int = 20,
        urgent: bool = False,
    ):
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("at least one base URL is needed")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.base_urls = [u.rstrip("/") for u in urls]
        self.base_url = self.base_urls[0]
        self.timeout = timeout
        self.budget = budget if budget is not None else WeightBudget.for_host(self.base_urls[0])
        self.max_attempts = max_attempts
        self.retry = Backoff(backoff_base_s, backoff_max_s, jitter=True)
        self.max_rate_limit_waits = max_rate_limit_waits
        self.urgent = urgent  # spends the budget's reserve too (the live stream's repairs)
        self._preferred = 0  # index of the base URL that answered last
        self._limit_tried = False
        self.weight_spent = 0  # REQUEST_WEIGHT of every request this client sent
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=len(self.base_urls), pool_maxsize=32)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    # ---- plain endpoints ---------------------------------------------------------------------------------------
    def ping(self) -> None:
        """GET /api/v3/ping: raises unless the exchange answers."""
        self._get(endpoints.PING)

    def server_time(self) -> int:
        """GET /api/v3/time: the exchange's clock in milliseconds since the epoch (also sets the budget's offset)."""
        answer = self._request(endpoints.TIME)
        body = _json(answer)
        if not isinstance(body, dict) or not isinstance(body.get("serverTime"), int):
            raise ExchangeError(200, None, f"expected {{'serverTime': <int>}}, got {snippet(body)}", answer.url)
        self.budget.set_server_time(body["serverTime"], answer.sent_local_ms, answer.received_local_ms)
        return body["serverTime"]

    def exchange_info(self, symbols: Sequence[str] | None = None) -> dict[str, Any]:
        """GET /api/v3/exchangeInfo (for ``symbols``, or every symbol). Also gives the budget the exchange's
        REQUEST_WEIGHT per minute limit and clock. Raises ExchangeError -1121 when a symbol is unknown."""
        params = {"symbols": json.dumps(list(symbols), separators=(",", ":"))} if symbols else None
        answer = self._request(endpoints.EXCHANGE_INFO, params)
        body = _json(answer)
        if not isinstance(body, dict):
            raise ExchangeError(200, None, f"expected an exchangeInfo object, got {snippet(body)}", answer.url)
        for rule in body.get("rateLimits") or []:
            if (
                isinstance(rule, dict)
                and rule.get("rateLimitType") == "REQUEST_WEIGHT"
                and rule.get("interval") == "MINUTE"
                and rule.get("intervalNum") == 1
                and isinstance(rule.get("limit"), int)
                and rule["limit"] > 0
            ):
                self.budget.set_limit(rule["limit"])
        if isinstance(body.get("serverTime"), int):
            self.budget.set_server_time(body["serverTime"], answer.sent_local_ms, answer.received_local_ms)
        return body

    def listings(self) -> list[SymbolListing]:
        """Every symbol exchangeInfo lists, with its status and assets (one call: weight 20)."""
        return parse_listings(self.exchange_info(), self.base_url + endpoints.EXCHANGE_INFO)

    def validate_symbols(self, symbols: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each symbol's exchangeInfo entry, when every one is listed and TRADING. Otherwise raises UnknownSymbol
        naming every unknown symbol (Binance -1121, or not a legal symbol name) and every symbol whose status is
        not TRADING (with its status)."""
        symbols = list(dict.fromkeys(symbols))
        illegal = [s for s in symbols if not endpoints.LEGAL_SYMBOL_PARAMETER.match(s)]
        legal = [s for s in symbols if endpoints.LEGAL_SYMBOL_PARAMETER.match(s)]
        listed: dict[str, dict[str, Any]] = {}
        url = self.base_url + endpoints.EXCHANGE_INFO
        if legal:
            try:
                # a long ?symbols= list makes a URL servers refuse: then every symbol's entry
                info = self.exchange_info(legal if len(legal) <= SYMBOLS_PER_INFO_QUERY else None)
            except ExchangeError as exc:
                if exc.code != -1121:
                    raise
                info = self.exchange_info()  # which of them is unknown: compare with the full list
            listed = {s["symbol"]: s for s in info.get("symbols", []) if isinstance(s, dict) and "symbol" in s}
        unknown = illegal + [s for s in legal if s not in listed]
        not_trading = {
            s: str(listed[s].get("status")) for s in legal if s in listed and listed[s].get("status") != "TRADING"
        }
        if unknown or not_trading:
            raise UnknownSymbol(sorted(unknown, key=symbols.index), not_trading, url)
        return {s: listed[s] for s in symbols}

    def historical_trades(self, symbol: str, from_id: int, limit: int = MAX_LIMIT) -> list[Trade]:
        """GET /api/v3/historicalTrades: up to ``limit`` trades with id >= ``from_id``, ascending."""
        _check_limit(limit)
        answer = self._request(endpoints.HISTORICAL_TRADES, {"symbol": symbol, "fromId": from_id, "limit": limit})
        return _parsed(answer, parse_rest_trades, symbol, answer.body)

    def klines(
        self,
        symbol: str,
        interval: str,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = MAX_LIMIT,
    ) -> list[Kline]:
        """GET /api/v3/klines: klines of ``interval`` ('1s', '1m', ...) opening in [start_time, end_time]."""
        _check_limit(limit)
        params: dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": limit}
        if start_time is not None:
            params["startTime"] = start_time
        if end_time is not None:
            params["endTime"] = end_time
        answer = self._request(endpoints.KLINES, params)
        return _parsed(answer, parse_rest_klines, symbol, answer.body)

    # ---- trades of a time window ---------------------------------------------------------------------------------
    def first_trade(self, symbol: str) -> Trade | None:
        """The symbol's first trade ever (its time and id), or None when it has not traded yet (listed, no trade).
        One historicalTrades request from id 0 (weight 25): spot trade ids start at 0 at the listing, and
        historicalTrades answers with the trades of id >= fromId, so its first row is the first trade."""
        page = self.historical_trades(symbol, 0, 1)
        return page[0] if page else None

    def first_trade_id(self, symbol: str, start_ms: int, end_ms: int) -> int | None:
        """Id of the first trade with start_ms <= time < end_ms, or None when the window has none (so far).
        One aggTrades request (weight 4) per hour of the window until one holds a trade (Binance refuses a
        startTime-endTime window of an hour or more): an aggregate's trades share its time, so the first aggregate of
        the window starts with the window's first trade."""
        now = self.budget.now_ms()
        for window_start in range(start_ms, min(end_ms, now + 1), endpoints.AGG_TRADES_MAX_WINDOW_MS - 1):
            window_end = min(end_ms, window_start + endpoints.AGG_TRADES_MAX_WINDOW_MS - 1)
            first = self._first_agg_trade_id(symbol, window_start, window_end)
            if first is not None:
                return first
        return None

    def _first_agg_trade_id(self, symbol: str, start_ms: int, end_ms: int) -> int | None:
        params = {"symbol": symbol, "startTime": start_ms, "endTime": end_ms - 1, "limit": 1}  # both inclusive
        for limit in (1, MAX_LIMIT):  # the second pass only if the first row is one Binance marks invalid
            params["limit"] = limit
            try:
                answer = self._request(endpoints.AGG_TRADES, params)
            except ExchangeError as exc:
                if exc.code == -1128:  # the window starts after the exchange's now (clock skew): nothing yet
                    return None
                raise
            aggs = _parsed(answer, parse_rest_agg_trades, answer.body)
            if aggs:
                return aggs[0].first_trade_id
            if answer.body.strip() in (b"[]", b""):
                return None
        return None

    def iter_trades_from(self, symbol: str, from_id: int, limit: int = MAX_LIMIT) -> Iterator[list[Trade]]:
        """Pages of trades with id >= ``from_id``, ascending, ``limit`` per historicalTrades request (25 weight
        each, whatever the limit: keep 1000). Ends after a page shorter than ``limit`` (the newest trade was
        reached); stop iterating as soon as you have what you need, since every page costs weight."""
        next_id = from_id
        while True:
            page = self.historical_trades(symbol, next_id, limit)
            if page:
                yield page
                next_id = page[-1].trade_id + 1
            if len(page) < limit:
                return

    def trades_between(self, symbol: str, start_ms: int, end_ms: int) -> list[Trade]:
        """Exactly the trades of ``symbol`` with start_ms <= trade_time < end_ms, ascending by id ([] when the
        window has none). Costs 4 weight (aggTrades) plus 25 per 1000 trades (historicalTrades), the last page
        reaching past the window.

        A window that has not ended yet (end_ms after the exchange's now) returns the trades that exist so far;
        ask again after end_ms for the complete window. A window in the future returns []."""
        return self.trade_window(symbol, start_ms, end_ms).trades

    def trade_window(self, symbol: str, start_ms: int, end_ms: int) -> TradeWindow:
        """The trades of [start_ms, end_ms) as ``trades_between`` fetches them, with the id of the first one and
        the first trade at or after end_ms (the proof that nothing more belongs to the window), when it exists."""
        first = self.first_trade_id(symbol, start_ms, end_ms)
        if first is None:
            return TradeWindow(None, [], None)
        out: list[Trade] = []
        next_trade = None
        for page in self.iter_trades_from(symbol, first):
            if page[-1].trade_time < end_ms:
                out.extend(page)
                continue
            cut = bisect.bisect_left(page, end_ms, key=lambda t: t.trade_time)
            out.extend(page[:cut])
            next_trade = page[cut]
            break
        if out and out[0].trade_time < start_ms:  # cannot happen on Binance; never return a trade outside
            out = [t for t in out if t.trade_time >= start_ms]
        return TradeWindow(first, out, next_trade)

    # ---- lifecycle -----------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> BinanceRestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- the request path ----------------------------------------------------------------------------------------
    def _get(self, path: str, params: dict[str, Any] | None = None) -> tuple[str, Any]:
        answer = self._request(path, params)
        return answer.url, _json(answer)

    def _ensure_limit(self) -> None:
        """Learn the REQUEST_WEIGHT limit from exchangeInfo once per budget (one caller fetches, the others wait)."""
        if not self._limit_tried:
            self.budget.learn_limit(self._fetch_limit)

    def _fetch_limit(self) -> None:
        if self._limit_tried:  # another thread of this client tried while this one waited
            return
        self._limit_tried = True
        try:
            self.exchange_info()
        except (ExchangeBanned, ExchangeUnreachable):
            raise
        except ExchangeError as exc:
            log.warning(
                "could not read the weight limit from exchangeInfo (%s); assuming %d a minute",
                exc,
                self.budget.limit,
            )
        if not self.budget.limit_known:
            log.warning(
                "exchangeInfo at %s has no REQUEST_WEIGHT/MINUTE limit; assuming %d a minute",
                self.base_url,
                self.budget.limit,
            )

    def _request(self, path: str, params: dict[str, Any] | None = None) -> _Answer:
        weight = endpoints.REST_WEIGHTS.get(path, 1)
        if weight > 1 and path != endpoints.EXCHANGE_INFO:
            self._ensure_limit()
        rounds = rate_limited = 0
        while True:
            failures: list[tuple[str, str, ExchangeError | None]] = []  # (url, reason, 5xx error)
            n = len(self.base_urls)
            retry_now = False
            for k in range(n):
                i = (self._preferred + k) % n
                url = self.base_urls[i] + path
                sent = self.budget.acquire(weight, self.urgent)
                self.weight_spent += weight
                sent_local = self.budget.local_ms()
                try:
                    response = self._session.get(url, params=params, timeout=self.timeout)
                except requests.Timeout:
                    self.budget.observe(None, sent)
                    failures.append((url, f"no answer within {self.timeout:g} s", None))
                    continue
                except requests.ConnectionError as exc:
                    self.budget.observe(None, sent)
                    failures.append((url, connection_reason(exc), None))
                    continue
                received_local = self.budget.local_ms()
                used = _int_header(response, "X-MBX-USED-WEIGHT-1M")
                status = response.status_code
                if status != 429:
                    self.budget.observe(used, sent)
                if status == 429:
                    rate_limited += 1
                    if rate_limited > self.max_rate_limit_waits:
                        raise _error(response, url)
                    retry_after = _retry_after_s(response)
                    if retry_after is None:  # not given: the rest of the exchange minute
                        retry_after = (MINUTE_MS - self.budget.now_ms() % MINUTE_MS) / 1000
                    log.warning("%s answered 429; every caller waits %g s", url, retry_after)
                    self.budget.pause(retry_after, used)
                    retry_now = True
                    break
                if status == 418:
                    retry_after = _retry_after_s(response) or 120
                    until = self.budget.ban(self.budget.now_ms() + int(retry_after * 1000))
                    server = _error(response, url)
                    raise ExchangeBanned(
                        until,
                        url,
                        f"IP banned by the exchange until {utc_text(until)} "
                        f"(Retry-After {retry_after:g} s); no request is sent before "
                        f"then. The exchange said: {server.msg}",
                    )
                if status >= 500:
                    failures.append((url, f"HTTP {status}", _error(response, url)))
                    continue
                if status >= 400:
                    raise _error(response, url)
                self._preferred = i
                return _Answer(url, response.content, response, sent_local, received_local)
            if retry_now:
                continue
            rounds += 1
            if rounds >= self.max_attempts:
                raise _give_up(failures, rounds)
            delay = self.retry.delay_s(rounds)
            log.info("%s failed (%s); retrying in %.2f s", path, "; ".join(f"{u}: {r}" for u, r, _ in failures), delay)
            time.sleep(delay)


def _give_up(failures: list[tuple[str, str, ExchangeError | None]], rounds: int) -> Exception:
    answered = [err for _, _, err in failures if err is not None]
    tries = f"{rounds} attempt{'s' if rounds > 1 else ''}"
    if answered:  # the exchange answered, with a 5xx: an error, not unreachability
        last = answered[-1]
        return ExchangeError(last.status, last.code, f"{last.msg} (after {tries})", last.url)
    urls = [u for u, _, _ in failures]
    if len(failures) == 1:
        return ExchangeUnreachable(urls[0], f"{failures[0][1]} (after {tries})")
    reason = "; ".join(f"{u}: {r}" for u, r, _ in failures) + f" (after {tries} each)"
    return ExchangeUnreachable(", ".join(urls), reason, urls)


def _error(response: requests.Response, url: str) -> ExchangeError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "msg" in body:
        return ExchangeError(response.status_code, body.get("code"), str(body["msg"]), url)
    return ExchangeError(response.status_code, None, _describe_non_binance_body(response), url)


def _json(answer: _Answer) -> Any:
    try:
        return answer.response.json()
    except ValueError:
        raise ExchangeError(
            answer.response.status_code, None, _describe_non_binance_body(answer.response), answer.url
        ) from None


def _parsed(answer: _Answer, parse, *args):
    try:
        return parse(*args)
    except MalformedPayload as exc:
        raise ExchangeError(answer.response.status_code, None, str(exc), answer.url) from None


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")


def _int_header(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _retry_after_s(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _describe_non_binance_body(response: requests.Response) -> str:
    """Name what came back when it is not JSON from Binance (an HTML error page, a proxy's text), briefly."""
    content_type = response.headers.get("Content-Type", "unknown content type")
    text = response.text.strip()
    if "html" in content_type.lower() or not text:
        return f"{response.reason or 'no reason given'} (a {content_type} body, not a Binance API answer)"
    return f"{response.reason or 'no reason given'}: {snippet(text, 120)}"
