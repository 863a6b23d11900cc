"""Serving: :func:`serve` and :func:`open_mcp_server` over Hypercorn's trio worker
(with the drain run before Hypercorn stops, one connection's fault contained to that
connection, and every exit bounded in time), and the ``trio-mcp-http`` command line.

The only layer that imports hypercorn.
"""
