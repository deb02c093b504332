"""Start the server: check where it may listen, open the index once, run uvicorn."""

from __future__ import annotations

import os
import secrets

from ..errors import ParameterError

TOKEN_ENV = "SIMSEARCH_TOKEN"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Addresses only this machine reaches; any other needs an access token."""


def check_listen(host: str, port: int, token: str | None) -> str | None:
    """The token to require (flag, else ``$SIMSEARCH_TOKEN``), or None on a local address without one.

    Raises
    ------
    ParameterError
        A non-local ``host`` without a token, a token too short to guess, or a bad port.
    """
    token = token or os.environ.get(TOKEN_ENV) or None
    if not 0 <= int(port) <= 65535:
        raise ParameterError(f"--port must be from 0 to 65535, not {port}")
    if token is not None and (len(token) < 16 or not token.isprintable() or " " in token):
        raise ParameterError("the access token must be at least 16 printable characters without spaces "
                             f"(e.g. {secrets.token_urlsafe(24)})")
    if host not in LOCAL_HOSTS and token is None:
        raise ParameterError(f"--host {host} listens beyond this machine: give an access token (--token or "
                             f"${TOKEN_ENV}) that every request must carry, or keep the default 127.0.0.1")
    return token


def serve(index_dir, *, host: str = "127.0.0.1", port: int = 8000, data_dir=None, workspace_dir=None,
          token: str | None = None, log_level: str = "warning") -> None:
    """Open the index and its encoder once, then serve the API and the page until interrupted."""
    token = check_listen(host, port, token)
    import uvicorn

    from .app import create_app
    from .state import ServerState

    state = ServerState(index_dir, data_dir, workspace_dir)
    app = create_app(state, token)
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    print(f"simsearch serving {state.index_path} ({len(state.index)} beats) at {where} "
          f"(API docs: {where}docs; workspaces: {state.workspace_dir})", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        state.close()
