"""The pages: one module per part of the project, each with its ``ROUTES``.

A route is ``(path, handler, method, role)``: the handler takes a
:class:`~loopline.ui.app.Call` and returns a :class:`~loopline.ui.render.Page` (or a
response of its own); ``role`` is the least API-key role that may call it.
"""
