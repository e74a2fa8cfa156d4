"""GET / : the health endpoint of the API process."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

blueprint = Blueprint("health", __name__)


@blueprint.get("/")
def health():
    """200 with mode, version and dependency states; 503 while a dependency is down."""
    report = current_app.extensions["engine.health"].report()
    return jsonify(report.to_document()), report.status_code
