"""The `engine` command: run a process mode, the runner, mint tokens, or the whole dev stack."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from engine.config import MODE_VARIABLES, Config, ConfigError, Mode, load_config
from engine.logs import configure_logging

log = logging.getLogger("engine.cli")

EXIT_CONFIG_ERROR = 2
"""Exit status of a process refused at start-up for its configuration."""
STARTUP_RETRY_SECONDS = 30.0
"""How long start-up work (indexes, buckets) retries while a store is not reachable yet."""


def _load_or_exit(environ=None, *, require_mode: bool = True) -> Config:
    try:
        return load_config(environ, require_mode=require_mode)
    except ConfigError as error:
        for problem in error.problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)


def _run_mode(config: Config, mode: Mode) -> None:
    configure_logging(mode.value, debug=config.debug_all)
    if mode is Mode.API:
        from engine.server import prepare_stores, run_api

        _retry_startup(lambda: prepare_stores(config))
        run_api(config)
    elif mode in (Mode.INSTANT_WORKER, Mode.QUEUED_WORKER):
        from tasks.worker import run_worker

        run_worker(config, mode)
    else:
        from beat.orchestrator import run_orchestrator

        run_orchestrator(config)


def _retry_startup(action) -> None:
    deadline = time.monotonic() + STARTUP_RETRY_SECONDS
    while True:
        try:
            action()
            return
        except Exception as error:  # noqa: BLE001 - any store error is retried until the deadline
            if time.monotonic() > deadline:
                log.error("start-up failed: %s", error)
                sys.exit(1)
            log.warning("start-up: a store is not reachable yet (%s); retrying", error)
            time.sleep(1.0)


def _run_several(config: Config) -> None:
    """Outside production, several modes at once: one child process each, on PORT, PORT+1, ..."""
    children: list[subprocess.Popen] = []
    order = [m for m in Mode if m in config.modes]
    for offset, mode in enumerate(order):
        env = {**os.environ, "PORT": str(config.port + offset)}
        for other, variable in MODE_VARIABLES.items():
            env[variable] = "1" if other is mode else "0"
        children.append(subprocess.Popen([sys.executable, "-m", "engine", "run"], env=env))
        print(f"{mode.value}: pid {children[-1].pid}, health on port {config.port + offset}", file=sys.stderr)

    def stop(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    for child in children:
        status = max(status, child.wait())
    sys.exit(status)


def cmd_run(_args: argparse.Namespace) -> None:
    config = _load_or_exit()
    if len(config.modes) == 1:
        _run_mode(config, next(iter(config.modes)))
    else:
        _run_several(config)


def cmd_sandbox(_args: argparse.Namespace) -> None:
    from sandbox.errors import SettingsError
    from sandbox.server import serve
    from sandbox.settings import RunnerSettings

    try:
        settings = RunnerSettings.from_env(os.environ)
    except SettingsError as error:
        for problem in error.problems:
            print(f"configuration error: {problem}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)
    configure_logging("custom-code-runner", debug=os.environ.get("DEBUG_ALL", "") in ("1", "true"))
    serve(settings)


def cmd_token(args: argparse.Namespace) -> None:
    from engine.auth.tokens import mint_platform_admin_token
    from engine.dev.stack import load_dev_secrets

    environ = {**load_dev_secrets(), **os.environ}
    if args.admin:
        secret = environ.get("SECRET")
        if not secret:
            print("configuration error: SECRET: is required to mint a platform-admin token", file=sys.stderr)
            sys.exit(EXIT_CONFIG_ERROR)
        print(mint_platform_admin_token(secret, ttl_seconds=args.ttl))
        return
    from engine.auth.cli import dev_environ, mint_for_workspace

    config = _load_or_exit({**dev_environ(), **environ, "IS_API": "1"}, require_mode=False)
    print(mint_for_workspace(config, args.workspace, customer_id=args.customer, ttl_seconds=args.ttl))


def cmd_dev(args: argparse.Namespace) -> None:
    from engine.dev.stack import run_dev_stack

    sys.exit(run_dev_stack(data_dir=args.data_dir))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "run", help="run the modes selected by IS_API, IS_*_TASKS_WORKER, IS_ORCHESTRATOR"
    ).set_defaults(func=cmd_run)
    commands.add_parser("sandbox", help="run the custom code runner").set_defaults(func=cmd_sandbox)
    token = commands.add_parser("token", help="print a token for the running stack")
    who = token.add_mutually_exclusive_group(required=True)
    who.add_argument("--admin", action="store_true", help="a platform-admin token")
    who.add_argument(
        "--workspace", metavar="KEY", help="a workspace-admin token (or a customer's, with --customer)"
    )
    token.add_argument("--customer", metavar="ID", help="the customer's id (with --workspace)")
    token.add_argument("--ttl", type=int, default=24 * 3600, help="lifetime in seconds (default 86400)")
    token.set_defaults(func=cmd_token)
    dev = commands.add_parser("dev", help="`make run`: embedded servers and every process, on one machine")
    dev.add_argument(
        "--data-dir", default=".data", help="where the embedded servers keep data (default .data)"
    )
    dev.set_defaults(func=cmd_dev)
    return parser


def main(argv: list[str] | None = None) -> None:
    """The `engine` command (`python -m engine` and the console script both come here)."""
    args = build_parser().parse_args(argv)
    if args.command == "token" and args.customer and not args.workspace:
        build_parser().error("--customer needs --workspace")
    args.func(args)


if __name__ == "__main__":
    main()
