"""vpd's web console: the REST API (/api/v1) and server-rendered pages over the operation
layer, for a learner's laptop or a class's projector. `create_app` builds the ASGI app;
`server.serve` runs it under uvicorn (what `vpd web` does)."""
from __future__ import annotations


def create_app(*args, **kwargs):
    from .app import create_app as _create

    return _create(*args, **kwargs)


__all__ = ["create_app"]
