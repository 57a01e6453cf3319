"""Socket-level plumbing of the fake server: the request handler and the threading HTTP server.

Built on the standard library's :class:`~http.server.ThreadingHTTPServer`: one
daemon thread per TCP connection, keep-alive honoured (``HTTP/1.1``, every
response framed by ``Content-Length`` or chunked encoding), Nagle disabled, a
deep listen backlog for bursts of clients. Connection threads are tracked so
that :meth:`HTTPServer.close_connections` can close idle keep-alive
connections and join every thread: nothing leaks after the server stops.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from openrouter_attribution.testing.recording import HeaderMap, RecordedRequest
from openrouter_attribution.testing.replies import DropReply, RawReply, Reply, StreamReply, error_reply, reply_status
from openrouter_attribution.testing.responses import encode_json
from openrouter_attribution.testing.routes import handle
from openrouter_attribution.testing.state import ServerState

__all__ = ["HTTPServer", "logger"]

_IDLE_TIMEOUT = 300.0

logger = logging.getLogger("openrouter_attribution.testing")
"""One INFO line per request: method, path, model, user, session and the status answered."""


def _log_request(record: RecordedRequest, reply: Reply) -> None:
    body = record.body if isinstance(record.body, dict) else {}
    session = body.get("session_id") or record.headers.get("x-session-id")
    logger.info(
        "%s %s model=%s user=%s session=%s status=%s",
        record.method, record.path, body.get("model") or "-", body.get("user") or "-", session or "-",
        reply_status(reply),
    )  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = _IDLE_TIMEOUT  # an abandoned keep-alive connection frees its thread eventually
    server_version = "FakeOpenRouter/1.0"

    @property
    def _state(self) -> ServerState:
        return cast(HTTPServer, self.server).state

    def log_message(self, format: str, *args: Any) -> None:  # `format`: the stdlib signature
        """Stay quiet: tests read the recorded requests instead of a log."""

    def do_GET(self) -> None:  # the stdlib dispatches on `do_<METHOD>`
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _serve(self) -> None:
        raw_body = self._read_body()
        if raw_body is None:
            self.close_connection = True
            self._send(error_reply(400, "Malformed request body framing"))
            return
        url = urlsplit(self.path)
        record = RecordedRequest.build(
            self.command, url.path, dict(parse_qsl(url.query)), HeaderMap(self.headers.items()), raw_body
        )
        self._state.log.append(record)
        try:
            reply = handle(self._state, record)
        except Exception:  # a bug of the fake server: answer 500 and keep the traceback for the test
            self._state.add_internal_error(traceback.format_exc())
            reply = error_reply(500, "FakeOpenRouter internal error; see server.internal_errors")
        if logger.isEnabledFor(logging.INFO):
            _log_request(record, reply)
        try:
            self._send(reply)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away; nothing to answer
            if isinstance(reply, StreamReply):  # the stream did not reach the client whole
                self._state.cancel_generation(reply.headers.get("X-Generation-Id"))

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            return None
        return self.rfile.read(size) if size > 0 else b""

    def _read_chunked(self) -> bytes | None:
        parts: list[bytes] = []
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # skip trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, reply: Reply) -> None:
        if isinstance(reply, DropReply):
            self._abort()
        elif isinstance(reply, StreamReply):
            self._send_stream(reply)
        elif isinstance(reply, RawReply):
            self._send_bytes(reply.status, reply.data, reply.content_type, reply.headers)
        else:
            self._send_bytes(reply.status, encode_json(reply.payload), "application/json", reply.headers)

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, reply: StreamReply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        for index, event in enumerate(reply.events):
            if reply.drop_after is not None and index >= reply.drop_after:
                self._state.cancel_generation(reply.headers.get("X-Generation-Id"))
                self._abort()
                return
            data = b"%x\r\n%s\r\n" % (len(event), event)
            if index == len(reply.events) - 1:
                data += b"0\r\n\r\n"  # end the body in the same write as the last event
            self.wfile.write(data)
        if not reply.events:
            self.wfile.write(b"0\r\n\r\n")

    def _abort(self) -> None:
        """Close the connection now, mid-response if need be."""
        self.close_connection = True
        with contextlib.suppress(OSError):  # already closed by the peer
            self.connection.shutdown(socket.SHUT_RDWR)


class HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that counts connections and can close them all."""

    daemon_threads = True
    block_on_close = False  # we join our own tracked threads in close_connections()
    request_queue_size = 1024  # 200+ clients may connect at once

    def __init__(self, address: tuple[str, int], state: ServerState) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self._active: dict[socket.socket, threading.Thread] = {}
        self._active_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        self.state.count_connection()
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), name="FakeOpenRouter-connection"
        )
        thread.daemon = True
        with self._active_lock:
            self._active[request] = thread
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._active_lock:
                self._active.pop(request, None)
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return  # a client that disconnects is not a server bug
        self.state.add_internal_error(traceback.format_exc())

    def close_connections(self, timeout: float) -> None:
        """Shut down every open connection (idle keep-alive ones included) and join their threads."""
        with self._active_lock:
            active = list(self._active.items())
        for sock, _ in active:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in active:
            thread.join(timeout)
