"""A minimal OpenAI/OpenRouter-compatible HTTP/1.1 server for the benchmarks (stdlib asyncio only).

It runs in its own process so its CPU is never counted as client CPU. Endpoints:

* ``POST [/prefix...]/chat/completions``: a canned OpenRouter-shaped completion (``usage`` with
  ``cost``, top-level ``provider``), or, when the body asks for ``"stream": true``, an SSE stream:
  a ``: OPENROUTER PROCESSING`` comment, N content chunks, a final usage chunk and ``data: [DONE]``,
  sent with chunked transfer encoding so the connection can be reused. Path segments before
  ``/chat/completions`` tune the answer: ``d<ms>`` delays it (e.g. ``/d20``), ``n<count>`` sets the
  number of stream chunks (default 50).
* ``POST [/prefix...]/embeddings``: an OpenRouter-shaped embeddings answer, one vector per input
  (``EMBEDDING_DIMS`` or the body's ``dimensions`` values), as float32 base64 or, with
  ``"encoding_format": "float"``, as JSON numbers written as OpenAI writes them (float32 values, nine
  significant digits); ``usage`` with ``cost``.
* ``POST [/prefix...]/rerank``: an OpenRouter-shaped rerank answer: the body's ``top_n`` (else every)
  documents with descending scores, each echoing its text; ``usage`` with ``total_tokens``,
  ``search_units`` and ``cost``.
* ``POST [/prefix...]/responses``: a canned OpenRouter Responses API answer (one ``message`` output item,
  ``usage`` with ``cost``), non-streamed.
* ``GET /stats``: ``{"accepted": ..., "open": ..., "requests": ...}``: TCP connections accepted so far,
  connections open now (the one asking excluded), requests served.

Run ``python benchmarks/server.py --port 0``; it prints ``PORT <n>`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import math
import re
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

DEFAULT_CHUNKS = 50
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
_GEN_ID = "gen-bench-0000000000"
"""The id in the prepared bodies; every answer gets its own id of the same length (see ``BenchServer._id``),
as OpenRouter's generation ids are unique: a ledger stores one row per call, not one per run."""
_GEN_ID_BYTES = _GEN_ID.encode()
_MODEL = "openai/gpt-4o-mini"
_USAGE = {
    "prompt_tokens": 8,
    "completion_tokens": 9,
    "total_tokens": 17,
    "cost": 0.0000066,
    "is_byok": False,
    "prompt_tokens_details": {"cached_tokens": 0},
    "cost_details": {"upstream_inference_cost": None},
    "completion_tokens_details": {"reasoning_tokens": 0},
}
_COMPLETION = {
    "id": _GEN_ID,
    "provider": "OpenAI",
    "model": _MODEL,
    "object": "chat.completion",
    "created": 1_700_000_000,
    "system_fingerprint": None,
    "choices": [
        {
            "logprobs": None,
            "finish_reason": "stop",
            "native_finish_reason": "stop",
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I help you today?",
                "refusal": None,
                "reasoning": None,
            },
        }
    ],
    "usage": _USAGE,
}


_RESPONSE = {
    "id": _GEN_ID, "object": "response", "created_at": 1_700_000_000, "completed_at": 1_700_000_001,
    "model": _MODEL, "status": "completed", "error": None, "incomplete_details": None,
    "output": [{"type": "message", "id": "msg_bench", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "Hello! How can I help you today?", "annotations": []}]}],
    "usage": {"input_tokens": 8, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 9,
              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 17, "cost": 0.0000066,
              "is_byok": False},
    "instructions": None, "metadata": {}, "tools": [], "tool_choice": "auto", "parallel_tool_calls": True,
    "temperature": None, "top_p": None, "frequency_penalty": None, "presence_penalty": None, "store": False,
}  # fmt: skip
"""The answer of ``POST /responses`` (the shape of the ``openrouter`` SDK's ``OpenResponsesResult``)."""
EMBEDDING_DIMS = 1536


def embedding_answer(count: int, encoding: str, dims: int = EMBEDDING_DIMS) -> bytes:
    """The body of an embeddings answer with ``count`` vectors of ``dims`` float32 values."""
    raw = [math.sin(i * 0.7 + 0.3) / math.sqrt(dims / 2) for i in range(dims)]
    packed = struct.pack(f"<{dims}f", *raw)
    values: object = base64.b64encode(packed).decode()
    if encoding == "float":
        values = [float(f"{v:.9g}") for v in struct.unpack(f"<{dims}f", packed)]
    data = [{"object": "embedding", "index": i, "embedding": values} for i in range(count)]
    usage = {"prompt_tokens": 2 * count, "total_tokens": 2 * count, "cost": 4e-08 * count, "is_byok": False}
    answer = {"id": _GEN_ID, "object": "list", "model": "openai/text-embedding-3-small", "data": data, "usage": usage}
    return json.dumps(answer, separators=(",", ":")).encode()


def rerank_answer(documents: list[str], top_n: int) -> bytes:
    """The body of a rerank answer ranking the first ``top_n`` of ``documents``, best first."""
    results = [{"index": i, "relevance_score": round(0.9 - 0.1 * i, 6), "document": {"text": documents[i]}}
               for i in range(min(top_n, len(documents)))]  # fmt: skip
    usage = {"total_tokens": 8 * len(documents), "search_units": 1, "cost": 0.002}
    answer = {"id": _GEN_ID, "model": "cohere/rerank-v3.5", "provider": "Cohere", "results": results, "usage": usage}
    return json.dumps(answer, separators=(",", ":")).encode()


def _response(
    status: str, body: bytes, content_type: str = "application/json", close: bool = False, generation_id: str = _GEN_ID
) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
        f"x-generation-id: {generation_id}\r\nconnection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode() + body


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def build_stream(count: int) -> bytes:
    """The whole chunked HTTP body of a stream with ``count`` content chunks."""
    base = {"id": _GEN_ID, "provider": "OpenAI", "model": _MODEL, "object": "chat.completion.chunk",
            "created": 1_700_000_000}  # fmt: skip
    parts = [_chunk(b": OPENROUTER PROCESSING\n\n")]
    for index in range(count):
        delta = {"role": "assistant", "content": f"tok{index} "} if index == 0 else {"content": f"tok{index} "}
        finish = "stop" if index == count - 1 else None
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": finish, "logprobs": None}
        parts.append(_chunk(_event({**base, "choices": [choice]})))
    parts.append(_chunk(_event({**base, "choices": [], "usage": _USAGE})))
    parts.append(_chunk(b"data: [DONE]\n\n"))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\nx-generation-id: " + _GEN_ID.encode() + b"\r\n"
)


class BenchServer:
    """Connection bookkeeping and request handling."""

    def __init__(self) -> None:
        self.accepted = 0
        self.open = 0
        self.requests = 0
        self.served = 0
        self._completion = json.dumps(_COMPLETION, separators=(",", ":")).encode()
        self._response = json.dumps(_RESPONSE, separators=(",", ":")).encode()
        self._streams: dict[int, bytes] = {}
        self._embeddings: dict[tuple[int, str, int], bytes] = {}
        self._reranks: dict[tuple[tuple[str, ...], int], bytes] = {}

    def _id(self) -> str:
        """A generation id no earlier answer of this server had, as long as ``_GEN_ID``."""
        self.served += 1
        return f"gen-bench-{self.served:010d}"

    def _stream_body(self, count: int) -> bytes:
        body = self._streams.get(count)
        if body is None:
            body = self._streams[count] = build_stream(count)
        return body

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                    return
                request_line, _, header_block = head.partition(b"\r\n")
                method, path, _version = request_line.decode("latin-1").split(" ", 2)
                length = 0
                close = False
                for line in header_block.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                body = await reader.readexactly(length) if length else b""
                self.requests += 1
                writer.write(await self._answer(method, path, body, close))
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.open -= 1
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(self, method: str, path: str, body: bytes, close: bool) -> bytes:
        path = path.split("?", 1)[0]
        if method == "GET" and path == "/stats":
            stats = {"accepted": self.accepted, "open": self.open - 1, "requests": self.requests}
            return _response("200 OK", json.dumps(stats).encode(), close=close)
        if method == "POST" and path.endswith("/chat/completions"):
            delay = 0.0
            count = DEFAULT_CHUNKS
            for segment in path.split("/")[:-2]:
                if segment[:1] == "d" and segment[1:].isdigit():
                    delay = int(segment[1:]) / 1000
                elif segment[:1] == "n" and segment[1:].isdigit():
                    count = int(segment[1:])
            if delay:
                await asyncio.sleep(delay)
            generation_id = self._id()
            if _STREAM_TRUE.search(body):
                connection = b"connection: close\r\n\r\n" if close else b"\r\n"
                stream = _STREAM_HEAD + connection + self._stream_body(count)
                return stream.replace(_GEN_ID_BYTES, generation_id.encode())
            body = self._completion.replace(_GEN_ID_BYTES, generation_id.encode())
            return _response("200 OK", body, close=close, generation_id=generation_id)
        if method == "POST" and path.endswith("/responses"):
            generation_id = self._id()
            body = self._response.replace(_GEN_ID_BYTES, generation_id.encode())
            return _response("200 OK", body, close=close, generation_id=generation_id)
        if method == "POST" and path.endswith("/embeddings"):
            request = json.loads(body)
            texts = request["input"]
            key = (1 if isinstance(texts, str) else len(texts), request.get("encoding_format") or "float",
                   request.get("dimensions") or EMBEDDING_DIMS)  # fmt: skip
            answer = self._embeddings.get(key)
            if answer is None:
                answer = self._embeddings[key] = embedding_answer(*key)
            generation_id = self._id()
            return _response("200 OK", answer.replace(_GEN_ID_BYTES, generation_id.encode(), 1), close=close,
                             generation_id=generation_id)  # fmt: skip
        if method == "POST" and path.endswith(("/keys", "/external-users")):  # per-user keys: created once each
            request = json.loads(body)
            key = (request.get("external") or {}).get("api_key") or ""
            data = {"hash": hashlib.sha256(key.encode()).hexdigest(), "name": request.get("name")}
            return _response("201 Created" if path.endswith("/keys") else "200 OK",
                             json.dumps({"data": data, "key": key}).encode(), close=close)  # fmt: skip
        if method == "POST" and path.endswith("/rerank"):
            request = json.loads(body)
            documents = request["documents"]
            key = (tuple(documents), request.get("top_n") or len(documents))
            answer = self._reranks.get(key)
            if answer is None:
                answer = self._reranks[key] = rerank_answer(list(documents), key[1])
            generation_id = self._id()
            return _response("200 OK", answer.replace(_GEN_ID_BYTES, generation_id.encode(), 1), close=close,
                             generation_id=generation_id)  # fmt: skip
        message = json.dumps({"error": {"code": 404, "message": f"no route {method} {path}"}}).encode()
        return _response("404 Not Found", message, close=close)


async def serve(host: str, port: int) -> None:
    bench = BenchServer()
    server = await asyncio.start_server(bench.handle, host, port, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


class ServerProcess:
    """Start :mod:`server` in a child process; ``with ServerProcess() as server: server.url``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ServerProcess:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--host", self.host, "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("PORT "):
            self.__exit__()
            raise RuntimeError(f"benchmark server did not start (said {line!r})")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url(self, delay_ms: int = 0, chunks: int = DEFAULT_CHUNKS) -> str:
        """Base URL (``.../chat/completions`` is appended by the clients) for this delay and chunk count."""
        parts = [self.root, "v1"]
        if delay_ms:
            parts.append(f"d{delay_ms}")
        if chunks != DEFAULT_CHUNKS:
            parts.append(f"n{chunks}")
        return "/".join(parts)

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.root}/stats", timeout=5) as answer:
            return json.loads(answer.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
