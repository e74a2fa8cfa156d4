"""`make bench`: run every `bench/bench_*.py` module, repeated, and print one table.

    .venv/bin/python -m bench [--quick] [--only NAME ...] [--repetitions N] [--output PATH]

Each repetition of each module runs in its own subprocess (`python -m bench --child MODULE`),
one after the other (never in parallel: they would measure each other), within the module's time
budget: a module that fails or runs over its budget shows its error in the table and the others
still run. Each module's `run(quick)` is repeated (REPETITIONS_FULL, or REPETITIONS_QUICK, while
the next repetition fits the module's budget);
the table shows the median of each figure, its spread (min-max) over the repetitions, the median
baseline and the median of the per-repetition ratios. The result, with the machine's description,
is also written to bench/results/latest.json. Exit status 1 only when every module failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ROOT, describe_machine, machine, median, spread

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPETITIONS_FULL = 3
REPETITIONS_QUICK = 2
"""At most; the second quick repetition runs only when it fits the module's budget."""
QUICK_TOTAL_BUDGET_SECONDS = 155.0
"""`make bench QUICK=1` must finish in under 3 minutes: this is shared by every module."""
FULL_MODULE_BUDGET_SECONDS = 900.0
"""Per module in a full run."""
HARD_LIMIT_FACTOR = 1.5
"""A module is stopped at this multiple of its budget (its budget is the point where it stops
starting new repetitions)."""
MIN_MODULE_SECONDS = 15.0
"""Time kept in reserve for each module still to run when a quick run's module overruns."""
STOP_GRACE_SECONDS = 15.0
"""After SIGTERM, how long a module may take to stop its servers before it is killed."""
EXPECTED_MODULES = ("bench_actions", "bench_flows", "bench_fairness", "bench_sync", "bench_sandbox")
"""Benchmarks the issues ask for; one not written yet shows as 'pending' in the table."""


def discover(only: list[str] | None = None) -> list[str]:
    """Names of the benchmark modules (bench/bench_*.py), sorted; filtered by substrings."""
    names = sorted(path.stem for path in BENCH_DIR.glob("bench_*.py"))
    if only:
        names = [name for name in names if any(part in name for part in only)]
    return names


# --- the child: one repetition of one module ---------------------------------------------------


def run_child(module_name: str, quick: bool, output: Path) -> int:
    """Run `module.run(quick)` once, writing {"seconds", "rows"} or {"error"} to output.

    Each repetition is a fresh process: a module's process-wide state (a configured Celery app,
    cached clients) can never leak from one repetition's servers into the next's."""
    import bench.common  # noqa: F401 - installs the SIGTERM handler that stops started servers

    started = time.monotonic()
    try:
        module = importlib.import_module(f"bench.{module_name}")
        rows = module.run(quick)
        if not isinstance(rows, list) or not all(isinstance(item, dict) for item in rows):
            raise TypeError(f"run() returned {type(rows).__name__}, expected a list of dicts")
    except BaseException as error:  # noqa: BLE001 - reported in the table, whatever it is
        traceback.print_exc()
        output.write_text(json.dumps({"error": _one_line(error)}))
        return 1
    output.write_text(
        json.dumps({"seconds": round(time.monotonic() - started, 2), "rows": rows}, default=str)
    )
    return 0


def _one_line(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"stopped (exit {error.code})"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


# --- the parent: every module, then the table --------------------------------------------------


def run_module(
    name: str, quick: bool, repetitions: int, budget_seconds: float, hard_seconds: float, log_dir: Path
) -> dict:
    """Run one module's repetitions, each in its own subprocess, while they fit budget_seconds
    (never past hard_seconds). Returns {"module", "status", "error", "seconds", "repetitions"}."""
    log_path = log_dir / f"{name}.log"
    log_path.unlink(missing_ok=True)
    started = time.monotonic()
    done: list[dict] = []
    error = None
    for index in range(repetitions):
        elapsed = time.monotonic() - started
        if done and elapsed + done[-1]["seconds"] > budget_seconds:
            break  # another repetition would not fit the budget
        output = log_dir / f"{name}.{index + 1}.json"
        output.unlink(missing_ok=True)
        timeout = max(1.0, hard_seconds - elapsed)
        returncode, timed_out = _run_once(name, quick, output, log_path, timeout)
        try:
            data = json.loads(output.read_text())
        except (OSError, ValueError):
            data = {}
        if timed_out:
            error = f"over its time budget ({hard_seconds:.0f} s) in repetition {index + 1}"
        elif data.get("error"):
            error = f"repetition {index + 1}: {data['error']}"
        elif returncode or "rows" not in data:
            error = f"repetition {index + 1} exited with status {returncode}: {_tail(log_path)}"
        if error:
            break
        done.append(data)
    status = "ok" if done and not error else ("partial" if done else "failed")
    return {
        "module": name,
        "status": status,
        "error": error,
        "seconds": round(time.monotonic() - started, 1),
        "repetitions": done,
        "log": str(log_path),
    }


def _run_once(
    name: str, quick: bool, output: Path, log_path: Path, timeout: float
) -> tuple[int | None, bool]:
    """One child process running one repetition; (exit status, whether it was stopped for time)."""
    command = [sys.executable, "-m", "bench", "--child", name, "--child-output", str(output)]
    if quick:
        command.append("--quick")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return process.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            _stop_child(process)
            return process.returncode, True


def _stop_child(process: subprocess.Popen) -> None:
    """SIGTERM the module (it stops its servers), then SIGKILL its process group if it lingers."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the group of the child we started, nothing else
        except ProcessLookupError:
            pass
        process.wait()


def _tail(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def aggregate(module: dict) -> list[dict]:
    """One table row per benchmark of a module: medians over its repetitions, with the spread."""
    if not module["repetitions"]:
        return [
            {
                "benchmark": module["module"],
                "module": module["module"],
                "figure": None,
                "unit": "",
                "spread": None,
                "baseline": None,
                "baseline_name": "",
                "ratio": None,
                "runs": 0,
                "notes": f"FAILED: {module['error']}",
            }
        ]
    by_name: dict[str, list[dict]] = {}
    for repetition in module["repetitions"]:
        for item in repetition["rows"]:
            by_name.setdefault(str(item.get("benchmark", "?")), []).append(item)
    rows = []
    for name, items in by_name.items():
        figures = [f for f in (_number(item.get("figure")) for item in items) if f is not None]
        baselines = [b for b in (_number(item.get("baseline")) for item in items) if b is not None]
        ratios = []
        for item in items:
            value = _number(item.get("ratio"))
            figure, baseline = _number(item.get("figure")), _number(item.get("baseline"))
            if value is None and figure is not None and baseline:
                value = figure / baseline
            if value is not None:
                ratios.append(value)
        notes = next((str(item["notes"]) for item in reversed(items) if item.get("notes")), "")
        if module["error"]:
            notes = f"{notes}; {module['error']}" if notes else module["error"]
        rows.append(
            {
                "benchmark": name,
                "module": module["module"],
                "figure": median(figures) if figures else items[-1].get("figure"),
                "unit": str(items[-1].get("unit", "")),
                "spread": list(spread(figures)) if figures else None,
                "figures": figures,
                "baseline": median(baselines) if baselines else items[-1].get("baseline"),
                "baseline_name": str(items[-1].get("baseline_name", "")),
                "ratio": median(ratios) if ratios else None,
                "ratios": ratios,
                "runs": len(figures),
                "notes": notes,
            }
        )
    return rows


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:.0f}"
        if magnitude >= 1:
            return f"{value:.3g}" if magnitude < 10 else f"{value:.1f}"
        return f"{value:.2g}"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_table(rows: list[dict]) -> str:
    """A Markdown table: benchmark | our figure | baseline | ratio (and each repetition's) | notes."""
    lines = [
        "| benchmark | our figure (median, min-max, runs) | baseline (measured in the same run) | ratio (median; each run) | notes |",
        "|---|---|---|---|---|",
    ]
    for item in rows:
        if item.get("runs"):
            low, high = item["spread"]
            figure = f"{_fmt(item['figure'])} {item['unit']} ({_fmt(low)}-{_fmt(high)}, n={item['runs']})"
        elif item.get("pending"):
            figure = "pending"
        elif item["figure"] is not None:
            figure = f"{item['figure']} {item['unit']}"
        else:
            figure = "FAILED"
        baseline = "-"
        if item.get("baseline") is not None:
            baseline = f"{_fmt(item['baseline'])} {item['unit']} ({item['baseline_name']})"
        elif item.get("baseline_name"):
            baseline = item["baseline_name"]
        ratio = f"x{_fmt(item['ratio'])}" if item.get("ratio") is not None else "-"
        if len(item.get("ratios") or []) > 1:
            ratio += " (" + ", ".join(f"x{_fmt(value)}" for value in item["ratios"]) + ")"
        lines.append(
            "| "
            + " | ".join(
                _cell(part) for part in (item["benchmark"], figure, baseline, ratio, item.get("notes", ""))
            )
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes; the whole run under 3 minutes")
    parser.add_argument("--only", nargs="*", metavar="NAME", help="run only modules whose name contains NAME")
    parser.add_argument(
        "--repetitions", type=int, help="repetitions per module (default 3, or 2 with --quick)"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR / "latest.json", help="where to write the JSON"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repetitions = args.repetitions or (REPETITIONS_QUICK if args.quick else REPETITIONS_FULL)
    if args.child:
        return run_child(args.child, args.quick, args.child_output)

    names = discover(args.only)
    info = machine()
    command = "make bench QUICK=1" if args.quick else "make bench"
    if args.only or args.repetitions:
        command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"benchmarks: {', '.join(names) or 'none found'}", file=sys.stderr)
    print(f"machine: {describe_machine(info)}", file=sys.stderr)
    log_dir = RESULTS_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC)
    started = time.monotonic()
    modules = []
    for index, name in enumerate(names):
        remaining_modules = len(names) - index
        if args.quick:
            remaining = QUICK_TOTAL_BUDGET_SECONDS - (time.monotonic() - started)
            budget = max(MIN_MODULE_SECONDS, remaining / remaining_modules)
            hard = max(
                budget,
                min(budget * HARD_LIMIT_FACTOR, remaining - MIN_MODULE_SECONDS * (remaining_modules - 1)),
            )
        else:
            budget, hard = FULL_MODULE_BUDGET_SECONDS, FULL_MODULE_BUDGET_SECONDS * HARD_LIMIT_FACTOR
        print(f"{name}: running (budget {budget:.0f} s) ...", file=sys.stderr, flush=True)
        result = run_module(name, args.quick, repetitions, budget, hard, log_dir)
        print(
            f"{name}: {result['status']} in {result['seconds']} s, {len(result['repetitions'])} repetition(s)"
            + (f" - {result['error']}" if result["error"] else ""),
            file=sys.stderr,
            flush=True,
        )
        modules.append(result)

    rows = [row for module in modules for row in aggregate(module)]
    if not args.only:
        for missing in (name for name in EXPECTED_MODULES if name not in names):
            rows.append(
                {
                    "benchmark": missing,
                    "module": missing,
                    "figure": None,
                    "unit": "",
                    "spread": None,
                    "baseline": None,
                    "baseline_name": "",
                    "ratio": None,
                    "runs": 0,
                    "pending": True,
                    "notes": f"pending: bench/{missing}.py is not written yet",
                }
            )
    duration = time.monotonic() - started
    print()
    print(f"Machine: {describe_machine(info)}")
    print(
        f"Command: `{command}` ({'quick' if args.quick else 'full'}; {repetitions} repetition(s) per module at most; "
        f"{duration:.0f} s; {started_at:%Y-%m-%d %H:%M} UTC)"
    )
    print()
    print(format_table(rows))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "command": command,
                "quick": args.quick,
                "started_at": started_at.isoformat(),
                "duration_seconds": round(duration, 1),
                "machine": info,
                "modules": [
                    {key: value for key, value in module.items() if key != "repetitions"}
                    | {
                        "repetitions": len(module["repetitions"]),
                        "repetition_seconds": [rep["seconds"] for rep in module["repetitions"]],
                    }
                    for module in modules
                ],
                "rows": rows,
            },
            indent=2,
            default=str,
        )
    )
    print(f"\nwritten to {args.output}", file=sys.stderr)
    if not modules or all(module["status"] == "failed" for module in modules):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
