"""`python -m bench`'s summary: medians over repetitions, and each repetition's ratio shown."""

from __future__ import annotations

from bench.__main__ import aggregate, format_table


def _repetition(figure: float, baseline: float) -> dict:
    return {
        "rows": [
            {
                "benchmark": "actions: throughput",
                "figure": figure,
                "unit": "runs/s",
                "baseline": baseline,
                "baseline_name": "raw Celery tasks/s",
                "ratio": round(figure / baseline, 2),
                "notes": "8 clients",
            }
        ]
    }


def test_each_repetition_s_ratio_is_kept_and_shown_beside_the_median():
    # Given three repetitions whose ratios are 0.5, 0.6 and 0.45
    module = {
        "module": "bench_actions",
        "error": None,
        "repetitions": [_repetition(400, 800), _repetition(480, 800), _repetition(360, 800)],
    }
    # When they are aggregated and printed
    (row,) = aggregate(module)
    table = format_table([row])
    # Then the row has the median figure, its spread, the median ratio and each repetition's
    assert row["figure"] == 400 and row["spread"] == [360, 480] and row["ratio"] == 0.5
    assert row["ratios"] == [0.5, 0.6, 0.45]
    assert "| x0.5 (x0.5, x0.6, x0.45) |" in table
    assert "400 runs/s (360-480, n=3)" in table


def test_a_single_repetition_shows_its_ratio_alone():
    module = {"module": "bench_actions", "error": None, "repetitions": [_repetition(400, 800)]}
    assert "| x0.5 |" in format_table(aggregate(module))
