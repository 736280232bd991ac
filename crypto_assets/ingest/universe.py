"""Which symbols a deployment captures: its universe, resolved from exchangeInfo and kept in the lake.

    universe = load_universe(selection, lake, rest_client_factory)   # at load: the kept one while fresh
    universe = refresh_universe(selection, lake, rest_client())      # the universe sensor, every few minutes
    universe.defined()    # every symbol ever a member: its raw_trades asset (recorded partitions stay browsable)
    universe.streamed()   # members now (TRADING or HALT): what the stream carries
    universe.chased()     # members TRADING: whose missing minutes the gap backfill fetches

A selection is an explicit list (``CRYPTO_SYMBOLS=BTCUSDT,ETHUSDT``) or every pair of a quote asset
(``CRYPTO_SYMBOLS=quote:USDT``). A member is a selected symbol exchangeInfo lists as TRADING or HALT; BREAK
(delisted, or listed and not open yet) or absent means not a member: a symbol that leaves stops being streamed and
chased, and keeps its asset. A halted symbol stays streamed (its minutes are recorded empty from the stream's
n = 0 klines) and is not chased: a halt is no gap. An explicit symbol is a member until exchangeInfo says otherwise.

The resolved universe is kept in the lake (``_state/universe-<selection>.json``), the one store every process of a
deployment reaches (code server, run workers, shards on other machines): a code location loads from it while the
exchange is unreachable, and a quote selection needs the exchange only once, on its very first load.
Shards: ``shard_of(symbols, index, count)`` splits by a stable hash, so a listing moves no other symbol.
No Dagster imports.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from crypto_assets.exchange.errors import ExchangeError, ExchangeUnreachable
from crypto_assets.exchange.models import MalformedPayload, SymbolListing
from crypto_assets.exchange.rest import BinanceRestClient
from crypto_assets.lake.store import Lake, LakeError
from crypto_assets.minutes import utc_text

log = logging.getLogger(__name__)

MEMBER_STATUSES = ("TRADING", "HALT")  # listed and not delisted: streamed; TRADING alone is chased
REFRESH_S = 600  # a kept universe younger than this is used without asking the exchange


class UniverseUnavailable(RuntimeError):
    """A quote selection has never been resolved and the exchange does not answer: no symbol to define."""


@dataclass(frozen=True)
class Selection:
    """What ``CRYPTO_SYMBOLS`` selects: ``symbols`` (explicit) or every pair quoted in ``quote_asset``."""

    symbols: tuple[str, ...] = ()
    quote_asset: str | None = None

    @property
    def name(self) -> str:
        if self.quote_asset:
            return f"quote-{self.quote_asset}"
        return "list-" + hashlib.sha1(",".join(self.symbols).encode()).hexdigest()[:10]

    def __str__(self) -> str:
        return f"quote:{self.quote_asset}" if self.quote_asset else ",".join(self.symbols)

    def selects(self, listing: SymbolListing) -> bool:
        if self.quote_asset:
            return listing.quoteAsset == self.quote_asset
        return listing.symbol in self.symbols


class Member(msgspec.Struct, frozen=True):
    status: str  # as exchangeInfo last said (TRADING, HALT, BREAK, ...; ABSENT: no longer listed)
    since_ms: int  # first seen in the universe
    left_ms: int | None = None  # when it stopped being a member (None: a member)


class Universe(msgspec.Struct, frozen=True):
    selection: str
    resolved_ms: int  # when exchangeInfo was last read (0: never, an explicit list taken as it is)
    members: dict[str, Member]  # every symbol ever selected, in the order first seen

    def defined(self) -> list[str]:
        return list(self.members)

    def streamed(self) -> list[str]:
        return [s for s, m in self.members.items() if m.left_ms is None]

    def chased(self) -> list[str]:
        return [s for s, m in self.members.items() if m.left_ms is None and m.status == "TRADING"]

    def describe(self) -> str:
        left = len(self.members) - len(self.streamed())
        halted = len(self.streamed()) - len(self.chased())
        when = utc_text(self.resolved_ms) if self.resolved_ms else "never (taken as configured)"
        return (
            f"{len(self.streamed())} symbols ({halted} halted, {left} left) for {self.selection}, "
            f"resolved from exchangeInfo {when}"
        )


def merge(selection: Selection, previous: Universe | None, listings: Sequence[SymbolListing], now_ms: int) -> Universe:
    """The universe after reading exchangeInfo's ``listings`` at ``now_ms``: new members join, members that are no
    longer listed as TRADING or HALT leave (and may come back), every symbol ever selected is kept."""
    listed = {x.symbol: x for x in listings if selection.selects(x)}
    members: dict[str, Member] = dict(previous.members) if previous else {}
    for symbol in selection.symbols:  # explicit symbols in their configured order, members until told otherwise
        members.setdefault(symbol, Member("TRADING", now_ms))
    for symbol, listing in listed.items():
        if symbol not in members and listing.status in MEMBER_STATUSES:
            members[symbol] = Member(listing.status, now_ms)
    for symbol, member in members.items():
        status = listed[symbol].status if symbol in listed else "ABSENT"
        # an explicit symbol the exchange does not list stays: the stream refuses it by name (a typo, not a delisting)
        if status in MEMBER_STATUSES or (status == "ABSENT" and symbol in selection.symbols):
            members[symbol] = Member(status, member.since_ms if member.left_ms is None else now_ms)
        elif member.left_ms is None:
            members[symbol] = Member(status, member.since_ms, left_ms=now_ms)
        else:
            members[symbol] = Member(status, member.since_ms, member.left_ms)
    return Universe(str(selection), now_ms, members)


def configured(selection: Selection) -> Universe:
    """An explicit list as it is, before exchangeInfo was read."""
    return Universe(str(selection), 0, {s: Member("TRADING", 0) for s in selection.symbols})


def kept(selection: Selection, lake: Lake) -> Universe | None:
    """The universe kept in the lake for ``selection``, None if there is none (or it cannot be read: logged)."""
    try:
        data = lake.read_state(f"universe-{selection.name}.json")
    except LakeError as exc:
        log.warning("the kept symbol universe could not be read (%s)", exc)
        return None
    if data is None:
        return None
    try:
        return msgspec.json.decode(data, type=Universe)
    except msgspec.DecodeError as exc:
        log.warning("the kept symbol universe in %s is unreadable (%s): resolving it again", lake.url, exc)
        return None


def refresh_universe(selection: Selection, lake: Lake, client: BinanceRestClient) -> Universe:
    """Read exchangeInfo now, merge, keep the result in the lake and return it. Raises what the client raises
    (``ExchangeUnreachable``, ``ExchangeError``) and ``LakeError`` when the result cannot be kept."""
    universe = merge(selection, kept(selection, lake), client.listings(), int(time.time() * 1000))
    lake.write_state(f"universe-{selection.name}.json", msgspec.json.encode(universe))
    return universe


def load_universe(
    selection: Selection,
    lake: Lake,
    client_factory: Callable[[], BinanceRestClient],
    max_age_s: float = REFRESH_S,
) -> Universe:
    """The universe to define assets for: the kept one while younger than ``max_age_s``, else resolved again; when
    the exchange or the lake fails, the kept one however old (logged), an explicit list as configured, and for a
    quote selection never resolved ``UniverseUnavailable`` naming both."""
    known = kept(selection, lake)
    if known is not None and known.resolved_ms and time.time() * 1000 - known.resolved_ms < max_age_s * 1000:
        return known
    try:
        with client_factory() as client:
            return refresh_universe(selection, lake, client)
    except (ExchangeUnreachable, ExchangeError, MalformedPayload, LakeError) as exc:
        if known is not None:
            log.warning("symbol universe not refreshed (%s): using the one kept, %s", exc, known.describe())
            return known
        if not selection.quote_asset:
            return configured(selection)
        raise UniverseUnavailable(
            f"CRYPTO_SYMBOLS={selection} is resolved from the exchange's exchangeInfo, which could not be read "
            f"({exc}), and no resolved universe is kept in the lake {lake.url} yet: start once with the exchange "
            f"reachable, or list the symbols explicitly"
        ) from None


def shard_of(symbols: Sequence[str], index: int, count: int) -> list[str]:
    """The symbols of shard ``index`` of ``count`` (a stable hash of the symbol: a listing moves no other)."""
    return [s for s in symbols if zlib.crc32(s.encode()) % count == index]
