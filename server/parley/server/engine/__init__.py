"""The dialogue engine: pure asyncio, no gRPC and no SQL.

It talks to a `Store` and to `Agent`s through the protocols in `parley.server.store` and
`parley.server.agents`, and produces runs as async iterators of session events.
"""
