"""Benchmarks: `python -m bench [--quick]` runs every `bench/bench_*.py` module and prints one table.

Each module exposes `run(quick: bool) -> list[dict]` returning rows {"benchmark", "figure",
"unit", "baseline", "baseline_name", "ratio", "notes"}, the baseline measured in the same run, and
is runnable alone as `python -m bench.<module> [--quick]`. Shared helpers are in `bench.common`.
See docs/benchmarks.md.
"""
