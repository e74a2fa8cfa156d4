"""/customers: the users of a workspace, managed by its admins (also created by customer tokens)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from engine.api.auth import current_principal, require
from engine.api.schema import LIST_QUERY, body, document, list_args, page_schema, validate_body
from engine.auth.principal import Role
from engine.domain import tenancy

blueprint = Blueprint("customers", __name__)

CUSTOMER = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "internalId": {"type": "string"},
        "name": {"type": "string"},
        "createdAt": {"type": "string", "format": "date-time"},
    },
}
CREATE_CUSTOMER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["internalId"],
    "properties": {
        "internalId": {"type": "string", "minLength": 1, "maxLength": 200},
        "name": {"type": "string", "maxLength": 200},
    },
}


def _services():
    return current_app.extensions["engine.services"]


@blueprint.post("/customers")
@document(summary="Create a customer", tags=["customers"], responses={201: CUSTOMER})
@require(Role.WORKSPACE_ADMIN)
@validate_body(CREATE_CUSTOMER)
def create_customer():
    data = body()
    customer = tenancy.create_customer(
        _services(), current_principal().workspace, data["internalId"], data.get("name")
    )
    return jsonify(customer.to_public()), 201


@blueprint.get("/customers")
@document(
    summary="List customers", tags=["customers"], query=LIST_QUERY, responses={200: page_schema(CUSTOMER)}
)
@require(Role.WORKSPACE_ADMIN)
def list_customers():
    cursor, limit = list_args()
    page = tenancy.list_customers(_services(), current_principal().workspace, cursor=cursor, limit=limit)
    return jsonify(page.to_document())


@blueprint.get("/customers/<customer_id>")
@document(summary="Get a customer (by id or internalId)", tags=["customers"], responses={200: CUSTOMER})
@require(Role.WORKSPACE_ADMIN)
def get_customer(customer_id: str):
    return jsonify(tenancy.get_customer(_services(), current_principal().workspace, customer_id).to_public())


@blueprint.delete("/customers/<customer_id>")
@document(summary="Delete a customer", tags=["customers"], responses={204: None})
@require(Role.WORKSPACE_ADMIN)
def delete_customer(customer_id: str):
    tenancy.delete_customer(_services(), current_principal().workspace, customer_id)
    return "", 204
