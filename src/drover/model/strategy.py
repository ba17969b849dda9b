"""How a rollout goes through its hosts, and the plan of batches that makes of a list of hosts.

A strategy with neither `batch_size` nor `batch_percent` sends to every host at once. With one,
hosts go in batches, in name order; the next batch starts when every host of the one before has
answered, `pause_s` has passed since the last answer, and (with a `health_gate_s`) the services
of its succeeded hosts have held their target that long. More failed hosts than allowed stop the
rollout: by default the first failure does (`max_failures: 0`), since a bad change should reach
as few batches as possible. drover.model.rollout carries a strategy out.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

WEEK_S = 7 * 24 * 3600
DEFAULT_DEADLINE_S = 600.0  # as an action's


class Strategy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    batch_size: int | None = Field(
        default=None, ge=1, description="hosts per batch; neither this nor batch_percent: all"
    )
    batch_percent: int | None = Field(
        default=None, ge=1, le=100, description="of all hosts per batch, rounded up"
    )
    pause_s: float = Field(
        default=0.0, ge=0, le=WEEK_S, description="after a batch's last answer, before the next"
    )
    health_gate_s: float = Field(
        default=0.0,
        ge=0,
        le=WEEK_S,
        description="how long a batch's services must hold their target before the next "
        "batch; 0: no gate",
    )
    max_failures: int | None = Field(
        default=None, ge=0, description="failed hosts tolerated; one more stops the rollout"
    )
    max_failures_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="of all hosts, tolerated to fail; neither this nor max_failures: 0",
    )
    host_timeout_s: float | None = Field(
        default=None,
        ge=0.001,
        le=WEEK_S,
        description="a sent host not answered in this time is expired; none: the deadline",
    )
    deadline_s: float = Field(
        default=DEFAULT_DEADLINE_S,
        ge=0.001,
        le=WEEK_S,
        description="for the whole rollout: then nothing more is sent",
    )

    @model_validator(mode="after")
    def _one_form_each(self) -> Strategy:
        if self.batch_size is not None and self.batch_percent is not None:
            raise ValueError("give 'batch_size' or 'batch_percent', not both")
        if self.max_failures is not None and self.max_failures_percent is not None:
            raise ValueError("give 'max_failures' or 'max_failures_percent', not both")
        return self

    def batch_hosts(self, total: int) -> int:
        """Hosts per batch out of `total` (at least 1)."""
        if self.batch_size is not None:
            size = self.batch_size
        elif self.batch_percent is not None:
            size = -(-total * self.batch_percent // 100)  # rounded up
        else:
            size = total
        return max(size, 1)

    def allowed_failures(self, total: int) -> int:
        """How many of `total` hosts may fail before the rollout stops: one more stops it."""
        if self.max_failures is not None:
            return self.max_failures
        if self.max_failures_percent is not None:
            # More than p % failed ⇔ failed > total·p/100 ⇔ failed > ⌊total·p/100⌋.
            return total * self.max_failures_percent // 100
        return 0


def plan(hosts: Iterable[str], strategy: Strategy) -> list[list[str]]:
    """The batches, in the order they go: hosts sorted by name, each once; no hosts, no batch.

    What a dry run shows; a rollout is carried out on exactly this plan."""
    ordered = sorted(set(hosts))
    size = strategy.batch_hosts(len(ordered))
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]
