"""Rollout strategies: what they accept, and the plan of batches they make."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from drover.model.strategy import Strategy, plan

HOSTS = [f"web-{n:02d}" for n in range(1, 11)]


def test_by_default_every_host_goes_at_once_and_the_first_failure_stops() -> None:
    strategy = Strategy()
    assert plan(HOSTS, strategy) == [HOSTS]
    assert strategy.allowed_failures(len(HOSTS)) == 0
    assert (strategy.pause_s, strategy.health_gate_s) == (0, 0)
    assert (strategy.host_timeout_s, strategy.deadline_s) == (None, 600)


def test_batches_of_n_hosts_leave_the_rest_to_a_last_smaller_batch() -> None:
    assert plan(HOSTS[:7], Strategy(batch_size=3)) == [
        ["web-01", "web-02", "web-03"],
        ["web-04", "web-05", "web-06"],
        ["web-07"],
    ]


def test_a_percentage_of_the_hosts_is_rounded_up() -> None:
    # 25 % of 10 is 2.5: batches of 3.
    assert [len(batch) for batch in plan(HOSTS, Strategy(batch_percent=25))] == [3, 3, 3, 1]
    assert [len(batch) for batch in plan(HOSTS, Strategy(batch_percent=1))] == [1] * 10
    assert plan(HOSTS, Strategy(batch_percent=100)) == [HOSTS]


def test_a_plan_goes_in_host_name_order_and_holds_each_host_once() -> None:
    assert plan(["b", "a", "c", "a"], Strategy(batch_size=2)) == [["a", "b"], ["c"]]


def test_no_hosts_make_no_batch() -> None:
    assert plan([], Strategy(batch_percent=50)) == []
    assert plan([], Strategy()) == []


def test_a_batch_larger_than_the_fleet_is_the_whole_fleet() -> None:
    assert plan(["a", "b"], Strategy(batch_size=50)) == [["a", "b"]]


@pytest.mark.parametrize(
    ("strategy", "total", "allowed"),
    [
        (Strategy(max_failures=2), 10, 2),
        (Strategy(max_failures=2), 1, 2),
        (Strategy(max_failures_percent=10), 25, 2),  # 2.5: a third failure is more than 10 %
        (Strategy(max_failures_percent=10), 9, 0),  # 0.9: the first is more than 10 %
        (Strategy(max_failures_percent=100), 7, 7),  # never stops
        (Strategy(max_failures_percent=0), 100, 0),
    ],
)
def test_how_many_hosts_may_fail(strategy: Strategy, total: int, allowed: int) -> None:
    assert strategy.allowed_failures(total) == allowed


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [
        ({"batch_size": 2, "batch_percent": 10}, (), "give 'batch_size' or 'batch_percent'"),
        ({"max_failures": 1, "max_failures_percent": 5}, (), "give 'max_failures' or"),
        ({"batch_size": 0}, ("batch_size",), "greater than or equal to 1"),
        ({"batch_percent": 0}, ("batch_percent",), "greater than or equal to 1"),
        ({"batch_percent": 101}, ("batch_percent",), "less than or equal to 100"),
        ({"batch_size": 2.5}, ("batch_size",), "valid integer"),
        ({"pause_s": -1}, ("pause_s",), "greater than or equal to 0"),
        ({"health_gate_s": float("nan")}, ("health_gate_s",), "finite number"),
        ({"deadline_s": float("inf")}, ("deadline_s",), "finite number"),
        ({"deadline_s": 0}, ("deadline_s",), "greater than or equal to 0.001"),
        ({"deadline_s": 8 * 24 * 3600}, ("deadline_s",), "less than or equal to 604800"),
        ({"host_timeout_s": 0}, ("host_timeout_s",), "greater than or equal to 0.001"),
        ({"max_failures": -1}, ("max_failures",), "greater than or equal to 0"),
        ({"max_failures_percent": 101}, ("max_failures_percent",), "less than or equal to 100"),
        ({"batches": 3}, ("batches",), "Extra inputs are not permitted"),
    ],
)
def test_a_bad_strategy_names_the_field_and_says_why(
    fields: dict[str, object], where: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Strategy.model_validate(fields)
    [error] = caught.value.errors()
    assert error["loc"] == where
    assert message in error["msg"]


def test_a_strategy_reads_back_from_its_json() -> None:
    strategy = Strategy(batch_percent=10, pause_s=30, health_gate_s=60, max_failures=2)
    assert Strategy.model_validate_json(strategy.model_dump_json()) == strategy


hosts_lists = st.lists(st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True), max_size=60)
strategies = st.one_of(
    st.builds(Strategy),
    st.builds(Strategy, batch_size=st.integers(1, 80)),
    st.builds(Strategy, batch_percent=st.integers(1, 100)),
)


@given(hosts_lists, strategies)
def test_every_host_is_in_exactly_one_batch_in_name_order(
    hosts: list[str], strategy: Strategy
) -> None:
    batches = plan(hosts, strategy)
    assert [host for batch in batches for host in batch] == sorted(set(hosts))


@given(hosts_lists, strategies)
def test_every_batch_but_the_last_has_the_batch_size(hosts: list[str], strategy: Strategy) -> None:
    batches = plan(hosts, strategy)
    size = strategy.batch_hosts(len(set(hosts)))
    assert all(len(batch) == size for batch in batches[:-1])
    assert all(1 <= len(batch) <= size for batch in batches)
    assert len(batches) == math.ceil(len(set(hosts)) / size)


@given(st.integers(1, 10_000), st.integers(1, 100))
def test_a_percentage_batch_is_at_least_that_share_and_less_than_one_host_more(
    total: int, percent: int
) -> None:
    size = Strategy(batch_percent=percent).batch_hosts(total)
    assert total * percent / 100 <= size < total * percent / 100 + 1
