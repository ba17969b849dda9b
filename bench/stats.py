"""Summaries of samples: nearest-rank percentiles, so every figure is one that was measured."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank `p`-th percentile (0 < p ≤ 100) of values already sorted."""
    if not sorted_values:
        raise ValueError("no samples")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        ordered = sorted(values)
        return cls(
            n=len(ordered),
            median=percentile(ordered, 50),
            p90=percentile(ordered, 90),
            p99=percentile(ordered, 99),
            max=ordered[-1],
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def ms(self) -> str:
        """`median / p90 / p99 / max` in milliseconds."""
        return " / ".join(f"{v * 1000:.1f}" for v in (self.median, self.p90, self.p99, self.max))
