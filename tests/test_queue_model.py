"""bench/queue_model.py: the two schedulers' models on arrivals whose answers can be worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def qm() -> Any:
    return load_script("bench/queue_model.py", "djepa_bench_queue_model")


def test_a_lone_request_waits_for_static_collection_only(qm: Any) -> None:
    cost = qm.StepCost(0.010, 0.005)  # one image: 15 ms a step
    assert qm.static_latencies([1.0], cost, 4, 0.25, 32) == pytest.approx([0.25 + 4 * 0.015])
    assert qm.continuous_latencies([1.0], cost, 4, 32) == pytest.approx([4 * 0.015])


def test_a_full_static_batch_closes_at_once(qm: Any) -> None:
    cost = qm.StepCost(0.010, 0.001)
    assert qm.static_latencies([0.0] * 8, cost, 10, 0.25, 8) == pytest.approx([10 * 0.018] * 8)
    # a ninth request starts the next batch, which waits its full collection and the first batch
    lat = qm.static_latencies([0.0] * 9, cost, 10, 0.25, 8)
    assert lat[8] == pytest.approx(max(0.25, 10 * 0.018) + 10 * 0.011)


def test_static_a_late_arrival_waits_for_the_running_batch_then_its_own(qm: Any) -> None:
    cost = qm.StepCost(0.25, 0.0)  # 4 steps: 1 s a batch, whatever its size
    lat = qm.static_latencies([0.0, 0.3], cost, 4, 0.25, 32)
    assert lat[0] == pytest.approx(1.25)  # collected 0.25 s, ran 1 s
    assert lat[1] == pytest.approx(2.25 - 0.3)  # its batch closed at 0.55, ran after the first (1.25 to 2.25)


def test_static_collection_goes_on_while_the_engine_runs(qm: Any) -> None:
    # three requests 0.3 s apart, while the first batch runs 1 s: Ray closes a batch per request (each collection
    # ends before the next arrives), so they run one after another instead of together
    cost = qm.StepCost(0.25, 0.0)
    lat = qm.static_latencies([0.0, 0.3, 0.6, 0.9], cost, 4, 0.25, 32)
    finishes = [a + x for a, x in zip([0.0, 0.3, 0.6, 0.9], lat, strict=True)]
    assert finishes == pytest.approx([1.25, 2.25, 3.25, 4.25])


def test_continuous_joins_at_the_next_step_and_shares_steps(qm: Any) -> None:
    cost = qm.StepCost(0.010, 0.010)  # 20 ms alone, 30 ms for two
    lat = qm.continuous_latencies([0.0, 0.015], cost, 3, 32)
    # step 1 (0-0.02) the first alone; the second joins at 0.02: steps at 0.05, 0.08 together; then alone at 0.10
    assert lat[0] == pytest.approx(0.08)
    assert lat[1] == pytest.approx(0.10 - 0.015)


def test_continuous_holds_at_most_max_in_flight(qm: Any) -> None:
    cost = qm.StepCost(0.010, 0.0)
    lat = qm.continuous_latencies([0.0, 0.0, 0.0], cost, 5, 2)
    assert lat == pytest.approx([0.05, 0.05, 0.10])


def test_flat_step_cost_bounds_the_ratio_near_two(qm: Any) -> None:
    # a step whose cost does not grow with its images: static's p99 is at most its wait plus two generations,
    # continuous's one generation plus a step, so the p99 ratio stays near 2 (the reading of bench/RESULTS.md)
    cost, steps = qm.StepCost(0.0045, 0.0), 64
    one = steps * cost(1)
    arrivals = qm.poisson_arrivals(3.0, 200.0, 0)
    static = qm.outcome(arrivals, qm.static_latencies(arrivals, cost, steps, 0.25, 32))
    cont = qm.outcome(arrivals, qm.continuous_latencies(arrivals, cost, steps, 32))
    assert cont.p99 <= one + cost(1) + 1e-9
    assert one < static.p99 <= 0.25 + 2 * one + 1e-9
    assert 1.5 < static.p99 / cont.p99 <= 2.0 + 0.25 / one
    assert cont.throughput == pytest.approx(static.throughput, rel=0.02)  # both keep up at 3 req/s


def test_poisson_arrivals_are_reproducible(qm: Any) -> None:
    a = qm.poisson_arrivals(5.0, 100.0, 7)
    assert a == qm.poisson_arrivals(5.0, 100.0, 7) and a != qm.poisson_arrivals(5.0, 100.0, 8)
    assert all(0 < x <= 100.0 for x in a) and a == sorted(a)
    assert 400 < len(a) < 600


def test_the_command_prints_a_table(qm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert qm.main(["--rates", "1,3", "--waits", "0.1,0.25", "--seconds", "30", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "p99 static / continuous" in out
    assert len([line for line in out.splitlines() if line.startswith("| 1 |") or line.startswith("| 3 |")]) == 4
    with pytest.raises(SystemExit):
        qm.main(["--rates", "a,b"])
    with pytest.raises(SystemExit):
        qm.main(["--fixed-ms", "0", "--per-image-ms", "0"])


def test_loads_are_fractions_of_the_capacity_of_full_batches(qm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cost = qm.StepCost(0.004, 0.001)
    assert qm.capacity(cost, 64, 32) == pytest.approx(32 / (64 * 0.036))
    assert qm.main(["--fixed-ms", "4", "--per-image-ms", "1", "--loads", "0.5", "--seconds", "20", "--seeds", "1"]) == 0
    rate = round(0.5 * 32 / (64 * 0.036), 2)
    assert f"| {rate:g} | 0.25 |" in capsys.readouterr().out


def test_measure_fits_the_sampler_step(qm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # the real step-wise sampler of the untrained djepa-tiny64 on this CPU: two sizes, one timed step each
    cost = qm.measure("djepa-tiny64", [1, 3], 1)
    assert cost.fixed >= 0 and cost.per_image >= 0 and cost(1) > 0
    assert "3 requests in 3 phases" in capsys.readouterr().err
    assert qm.main(["--measure", "--device", "cpu", "--sizes", "2", "--repeats", "1", "--rates", "2",
                    "--seconds", "20", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "64 AR steps" in out and "| 2 | 0.25 |" in out
