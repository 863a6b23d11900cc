"""The protocol, sans-IO: JSON-RPC envelopes and errors, SSE framing, HTTP header rules,
protocol revisions, event ids and the event store, wire types, and the decisions that
say how a request is answered (era, Accept, versions, session header, the 2026-07-28
routing headers and ``_meta``).

Synchronous and deterministic: never imports trio, hypercorn or anyio, never does I/O,
and is tested without a server.  Everything above builds on it.
"""
