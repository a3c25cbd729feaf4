"""The HTTP API: FastAPI routers under ``/api/v1`` (thin: parse, authorize, call a service, shape the reply).

The application is built by :func:`tradefleet.api.main.create_app`; this package imports nothing on purpose,
so ``import tradefleet.api.errors`` does not build an app.
"""
