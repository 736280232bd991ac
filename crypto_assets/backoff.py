"""Back-off: how long to wait before the next attempt after ``failures`` failed ones in a row. The one rule every
retry loop of the project uses (REST, the stream's reconnects, the archive, the capture process's lake retries, the
keep-alive's crash loop, the gap sensor's retries): the first wait, doubled per failure, capped; with ``jitter``, a
random share of it (at least half), so that clients that failed together do not retry together."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first_s: float
    max_s: float
    jitter: bool = False

    def __post_init__(self) -> None:
        if self.first_s < 0 or self.max_s < self.first_s:
            raise ValueError(f"back-off needs 0 <= first_s <= max_s, got first_s={self.first_s}, max_s={self.max_s}")

    def ceiling_s(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row without jitter: 0 for none, then first, 2 x first, ...
        up to ``max_s``."""
        if failures <= 0:
            return 0.0
        return min(self.max_s, self.first_s * 2 ** min(failures - 1, 60))

    def delay_s(self, failures: int) -> float:
        """The wait before the next attempt: ``ceiling_s``, or with ``jitter`` a uniform draw from its upper half."""
        ceiling = self.ceiling_s(failures)
        return random.uniform(ceiling / 2, ceiling) if self.jitter else ceiling
