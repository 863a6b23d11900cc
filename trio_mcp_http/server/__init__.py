"""The server framework: :class:`McpServer` (tools, resources, templates, prompts,
completions, logging) and the :class:`Context` a handler is handed.

Handlers are plain Trio async functions.  Never imports the transport: what a running
request can do (notify, ask the client for input, close its stream) reaches the
transport through the ``Outlet`` protocol the transport plugs in.
"""
