"""Live updates: what a trader's browser sees change, published after commit to the owner's channel.

- :mod:`~tradefleet.events.updates`: the payloads, one class per kind, each with one wire shape.
- :mod:`~tradefleet.events.outbox`: collecting them during a transaction and publishing after its commit.
- :mod:`~tradefleet.events.stream`: reading a user's channel for the SSE stream.
- :mod:`~tradefleet.events.tickets`: the single-use tickets that open a stream.
- :mod:`~tradefleet.events.channels`: the Redis channel and stream names, and the client.

Import the names from those modules; this package exports nothing itself.
"""
