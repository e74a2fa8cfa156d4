"""`python -m engine` and the `engine` console script: patch for gevent if this is the API, then run."""

from engine.green import patch_if_api_process


def run() -> None:
    patch_if_api_process()  # before anything else is imported: see engine/green.py
    from engine.cli import main

    main()


if __name__ == "__main__":
    run()
