"""Development only: the embedded servers and `make run`. Never imported in production."""
