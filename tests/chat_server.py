"""A real OpenAI-compatible chat-completions server on 127.0.0.1 that misbehaves on request.

Replies are a pure function of the request (its seed and the number of assistant turns so far), so
a rerun against a healthy server writes what an uninterrupted run writes. ``fault(n, body)`` picks
what the ``n``-th request (from 0) gets: ``None`` (a reply), ``"500"``, ``"429"``, ``"slow"``
(sleeps past any client timeout in the tests), ``"malformed"`` (a 200 whose body is cut off),
``"surrogate"`` (a reply holding a lone surrogate, as a JSON ``"\\ud800"`` escape) or ``"die"``
(the server stops listening: this request and every later one find no server).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Fault = Callable[[int, dict[str, Any]], str | None]


def reply_text(body: dict[str, Any]) -> str:
    """The answer the healthy server gives: decided by the request's seed and turn only."""
    turn = sum(m["role"] == "assistant" for m in body["messages"])
    return f"<think>turn {turn}, seed {body.get('seed')}</think><answer>hold cup</answer>"


class ChatServer:
    def __init__(self, fault: Fault | None = None, port: int = 0, slow_s: float = 3.0) -> None:
        self.fault = fault or (lambda n, body: None)
        self.slow_s = slow_s
        self.requests: list[dict[str, Any]] = []  # every request's body, in arrival order
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    n = len(server.requests)
                    server.requests.append(body)
                what = "die" if server._stopped.is_set() else server.fault(n, body)
                if what == "die":  # no reply: the connection just ends
                    server.stop()
                    self.close_connection = True
                    return
                if what == "slow":
                    time.sleep(server.slow_s)
                if what in ("500", "429"):
                    self._send(int(what), b'{"error": {"message": "try again"}}')
                    return
                content = reply_text(body)
                if what == "surrogate":  # json.dumps writes it as the escape "\ud800"
                    content = content.replace("</think>", "\ud800</think>")
                reply = {
                    "id": f"r{n}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
                }
                data = json.dumps(reply).encode()
                self._send(200, data[: len(data) // 2] if what == "malformed" else data)

            def _send(self, status: int, data: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("retry-after-ms", "5")  # the client's backoff, short for the tests
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up waiting (a "slow" reply past its timeout)
                    self.close_connection = True

        self.http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.http.server_port
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._stopped = threading.Event()
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening (connections are refused from now on); safe from a handler and twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()

        def close() -> None:
            self.http.shutdown()
            self.http.server_close()

        threading.Thread(target=close, daemon=True).start()


@contextmanager
def chat_server(fault: Fault | None = None, port: int = 0, slow_s: float = 3.0) -> Iterator[ChatServer]:
    server = ChatServer(fault, port, slow_s)
    try:
        yield server
    finally:
        server.stop()
