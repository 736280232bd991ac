"""Why raw_trades minutes are still missing after a run, as values.

The raw op (``assets.py``) names why it failed in its ``Failure``'s metadata: ``reason`` (a ``MissReason`` value) and
``detail`` (one line: the error, or the first minute's problem). The gap sensor (``gap_backfill.py``) reads them back
from the run's step failure event and keeps the reason with the minutes that wait, so that nothing reads a reason out
of a message's text. How a run ended without failing (canceled, or succeeded without the minutes), or failed without
a reason of the op's (its process died, a failure reported from outside), is a reason too. No Dagster imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

REASON_KEY = "reason"  # the metadata names on the raw op's failure
DETAIL_KEY = "detail"


class MissReason(StrEnum):
    # from the raw op's failure
    EXCHANGE_UNREACHABLE = "exchange_unreachable"
    EXCHANGE_REFUSED = "exchange_refused"
    LAKE_FAILED = "lake_failed"
    MINUTES_NOT_RECORDED = "minutes_not_recorded"  # not proven complete, refused by the lake or failing a check
    # from how the run ended
    RUN_FAILED = "run_failed"  # without a reason of the raw op's: its detail is the failure's own message
    RUN_CANCELED = "run_canceled"
    SUCCEEDED_WITHOUT_THEM = "succeeded_without_them"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    MissReason.EXCHANGE_UNREACHABLE: "exchange unreachable",
    MissReason.EXCHANGE_REFUSED: "the exchange refused",
    MissReason.LAKE_FAILED: "lake error",
    MissReason.MINUTES_NOT_RECORDED: "minutes not recorded",
    MissReason.RUN_FAILED: "failed",
    MissReason.RUN_CANCELED: "canceled",
    MissReason.SUCCEEDED_WITHOUT_THEM: "succeeded without them",
}


def failure_metadata(reason: MissReason, detail: str) -> dict[str, str]:
    """The metadata entries the raw op puts on its ``Failure``."""
    return {REASON_KEY: reason.value, DETAIL_KEY: detail}


def read_failure_metadata(metadata: Mapping[str, object]) -> tuple[MissReason, str] | None:
    """The reason and detail of a failure's metadata (values or Dagster's metadata values), or None when it names
    no reason this module knows."""
    try:
        reason = MissReason(_plain(metadata.get(REASON_KEY)))
    except ValueError:
        return None
    return reason, str(_plain(metadata.get(DETAIL_KEY)) or "")


def _plain(value: object) -> object:
    return getattr(value, "value", value)  # a TextMetadataValue's text, or the value itself
