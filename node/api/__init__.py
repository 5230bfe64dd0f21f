"""The local API: HTTP/JSON on the node's Unix socket.

- :func:`node.api.app.create_app` builds the ASGI app over an
  :class:`node.api.services.ApiServices` (what the daemon provides);
- :func:`node.api.server.serve` serves it on a Unix socket with the caller's uid;
- docs/api.md describes the resources, roles and errors.

Kept import-light: import the submodules you need.
"""
