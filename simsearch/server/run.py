"""Start the server: check where it may listen, open the index once, run uvicorn."""

from __future__ import annotations

import errno
import os
import secrets
import socket

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


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (0: a free port), as uvicorn binds its own, for uvicorn to serve on.

    Bound here, before the index loads, so a port already taken is one clear line (uvicorn logs its own message
    and exits 3), and the address printed is the one listened on (with port 0, the port the system chose).

    Raises
    ------
    ParameterError
        The host is unknown or not this machine's, or the port is taken or not ours to use.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError):
        raise ParameterError(f"--host {host}: no such address") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart need not wait
        sock.bind(address)
        sock.listen(2048)  # uvicorn's backlog: a request made once the address is printed waits, not refused
    except OSError as exc:
        sock.close()
        why = {errno.EADDRINUSE: "the port is already in use (another server?)",
               errno.EADDRNOTAVAIL: "the address is not this machine's",
               errno.EACCES: "a port below 1024 needs root"}.get(exc.errno, exc.strerror or type(exc).__name__)
        raise ParameterError(f"cannot listen on {host}:{port}: {why}") from None
    sock.set_inheritable(True)
    return sock


def serve(index_dir, *, host: str = "127.0.0.1", port: int = 8000, data_dir=None, workspace_dir=None,
          token: str | None = None, log_level: str = "warning", sock: socket.socket | None = None) -> None:
    """Open the index and its encoder once, then serve the API and the page until interrupted
    (on ``sock``, a :func:`listening_socket` for ``host``:``port``; bound here when None)."""
    token = check_listen(host, port, token)
    sock = sock if sock is not None else listening_socket(host, port)
    import uvicorn

    from .app import create_app
    from .state import ServerState

    try:
        state = ServerState(index_dir, data_dir, workspace_dir)
    except BaseException:
        sock.close()
        raise
    app = create_app(state, token)
    port = sock.getsockname()[1]
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    print(f"simsearch serving {state.index_path} ({len(state.index)} beats) at {where} "
          f"(API docs: {where}docs; workspaces: {state.workspace_dir})", flush=True)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level=log_level)).run(sockets=[sock])
    finally:
        sock.close()
        state.close()
