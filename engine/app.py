"""The Flask app factory: `create_app(config, services)`; no I/O at import time."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from pymongo.errors import ConnectionFailure as PyMongoConnectionFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

from engine.config import Config, Mode
from engine.errors import EngineError, TooManyRequests
from engine.health import HealthChecker
from engine.services import Services

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""Largest request body the API reads (connector archives are the largest)."""
STORE_RETRY_AFTER_SECONDS = 5
"""Retry-After of the 503 answered while MongoDB or Redis cannot be reached."""


def create_app(config: Config, services: Services | None = None) -> Flask:
    """Build the API application over the given services (built from config if omitted)."""
    services = services or Services.from_config(config, app_name="engine-api")
    app = Flask("engine")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["engine.services"] = services
    app.extensions["engine.health"] = HealthChecker(services, Mode.API.value)

    from engine.api import metrics
    from engine.discovery import submodules

    metrics.init_metrics(app)
    # Each module of engine.api that defines `blueprint` is one resource; it registers itself.
    for module in submodules("engine.api", skip=frozenset({"metrics"})):
        if hasattr(module, "blueprint"):
            app.register_blueprint(module.blueprint)
        if hasattr(module, "init_app"):
            module.init_app(app)
    _register_error_handlers(app)
    return app


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(EngineError)
    def engine_error(error: EngineError):
        response = jsonify(error.to_document())
        response.status_code = error.status
        if isinstance(error, TooManyRequests):
            response.headers["Retry-After"] = str(max(1, round(error.retry_after_seconds)))
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        name = (error.name or "error").lower().replace(" ", "_")
        response = jsonify({"error": {"type": name, "message": error.description}})
        response.status_code = error.code or 500
        return response

    @app.errorhandler(PyMongoConnectionFailure)
    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def store_unavailable(error: Exception):
        # A store that cannot be reached is an outage to retry through, not an engine bug.
        store = "mongodb" if isinstance(error, PyMongoConnectionFailure) else "redis"
        log.warning("%s unavailable: %s", store, type(error).__name__)
        response = jsonify(
            {"error": {"type": "unavailable", "message": f"{store} is unavailable: retry later"}}
        )
        response.status_code = 503
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER_SECONDS)
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error")
        response = jsonify({"error": {"type": "internal_error", "message": "internal error"}})
        response.status_code = 500
        return response
