"""The transport: MCP Streamable HTTP as an ASGI application on Trio.

* ``app``: the thin router that owns the drain; its settings in ``config``;
* ``session_era`` and ``stateless_era``: the two protocol eras, peers handed one
  ``gate`` (admission, in-flight accounting, refusal), never the app;
* ``session``: a 2025-era session, one nursery owning its requests;
* ``streams``: SSE streams and the one writer of every stream (bounded queue,
  keep-alive, slow-reader policy);
* ``runner``: the one place a result, an error or a cancellation becomes an answer;
* ``asgi``: the guaranteed response (exactly once; 499 when the client left) and body
  reading;
* ``tasks``: the 2026-07-28 tasks extension.

Never imports hypercorn: any ASGI server can drive it.
"""
