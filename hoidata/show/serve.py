"""``--serve``: the written site over HTTP on 127.0.0.1 only, until interrupted."""

from __future__ import annotations

from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """One line per request would drown the terminal."""


def make_server(site: Path, port: int) -> ThreadingHTTPServer:
    """A server for ``site`` on 127.0.0.1:``port`` (0: any free port); the caller runs it."""
    return ThreadingHTTPServer((HOST, port), partial(QuietHandler, directory=str(site)))


def serve(site: Path, port: int) -> None:
    server = make_server(site, port)
    print(f"  serving {site} at http://{HOST}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
