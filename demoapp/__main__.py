"""`python -m demoapp --port 5100 [--state-file demo.json] [--seed-contacts 50]`: run the demo app."""

from __future__ import annotations

import argparse
import logging

from werkzeug.serving import run_simple

from demoapp.app import create_app
from demoapp.state import DEFAULT_ACCESS_TOKEN_TTL_SECONDS, DemoState


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demoapp", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5100)
    parser.add_argument("--state-file", help="keep the state in this JSON file across restarts")
    parser.add_argument("--api-key", action="append", help="accepted API key (repeatable; default demo-key)")
    parser.add_argument(
        "--seed-contacts", type=int, default=0, help="create this many contacts if there are none"
    )
    parser.add_argument("--access-token-ttl-seconds", type=float, default=DEFAULT_ACCESS_TOKEN_TTL_SECONDS)
    parser.add_argument("--rotate-refresh-tokens", action="store_true")
    parser.add_argument("--fault-rate-429", type=float, default=0.0)
    parser.add_argument("--fault-rate-500", type=float, default=0.0)
    parser.add_argument("--fault-seed", type=int)
    args = parser.parse_args(argv)
    state = DemoState(
        api_keys=tuple(args.api_key or ("demo-key",)),
        path=args.state_file,
        access_token_ttl_seconds=args.access_token_ttl_seconds,
        rotate_refresh_tokens=args.rotate_refresh_tokens,
    )
    if args.seed_contacts and not state.contacts:
        for n in range(1, args.seed_contacts + 1):
            state.create_contact(
                {"email": f"person{n}@example.com", "first_name": f"Person{n}", "last_name": "Demo"}
            )
        state.save()
    app = create_app(
        state, fault_rate_429=args.fault_rate_429, fault_rate_500=args.fault_rate_500, seed=args.fault_seed
    )
    logging.basicConfig(level=logging.INFO)
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
