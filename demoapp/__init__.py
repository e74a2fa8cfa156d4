"""A small stand-alone external app (a CRM with contacts) for tests, demos and `make run`.

API-key, basic, bearer and OAuth2 auth; a paginated contacts collection with `updated_since`;
webhook subscriptions; injectable 429/500 faults. See docs/connectors.md ("The demo app").
"""

from demoapp.app import create_app
from demoapp.state import DemoState

__all__ = ["DemoState", "create_app"]
