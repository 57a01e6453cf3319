"""Embeddings benchmark: client CPU per embeddings call, ours against the raw openai SDK and peers.

Part of ``run.py`` (``make bench`` and the smoke run of ``make test``), against ``server.py``'s
``/embeddings``. Each client makes two calls: a query (one text) and a batch of :data:`DOCS` texts,
both answered with 1536-dimension vectors, and checks the vectors it gets. The reference is the SDK's
own default, ``client.embeddings.create(...)``, which asks for base64 and decodes it (with numpy when
installed). Our models are measured with a user from ``user_context``, so attribution is part of their
cost. A second table shows why ``encoding_format`` defaults to ``"base64"``: the bytes of one answer
and our client's CPU to read it, in both formats.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clients import API_KEY, Skip

MODEL = "openai/text-embedding-3-small"
DIMS = 1536
DOCS = 32
TEXTS = [f"document number {i} about a topic" for i in range(DOCS)]
QUERY = "which document is about the topic?"
REFERENCE = "openai"
OURS_LC = "ours-lc"
TARGET = 1.0
"""Our LangChain embeddings' client CPU per call must be at most this times the raw SDK's."""


def _check(vectors: Any, count: int, client: str) -> None:
    if len(vectors) != count or any(len(vector) != DIMS for vector in vectors):
        raise RuntimeError(f"{client} returned {len(vectors)} vectors of sizes {sorted({len(v) for v in vectors})}")


class Adapter:
    """One embeddings client bound to the benchmark server."""

    name = ""
    label = ""

    def query(self) -> None:
        raise NotImplementedError

    def documents(self) -> None:
        raise NotImplementedError


class OpenAISDK(Adapter):
    def __init__(self, base_url: str, encoding: str | None) -> None:
        import openai

        self.client = openai.OpenAI(base_url=base_url, api_key=API_KEY)
        self.extra = {"encoding_format": encoding} if encoding else {}
        self.name = "openai" + (f"-{encoding}" if encoding else "")
        self.label = "openai SDK embeddings.create" + (f" ({encoding})" if encoding else " (reference)")

    def query(self) -> None:
        answer = self.client.embeddings.create(model=MODEL, input=[QUERY], **self.extra)
        _check([d.embedding for d in answer.data], 1, self.name)

    def documents(self) -> None:
        answer = self.client.embeddings.create(model=MODEL, input=TEXTS, **self.extra)
        _check([d.embedding for d in answer.data], DOCS, self.name)


class Ours(Adapter):
    """Our models, each call made for a user set with ``user_context``."""

    def __init__(self, base_url: str, framework: str, encoding: str) -> None:
        from openrouter_attribution import user_context

        self._context = user_context("app_42")
        if framework == "langchain":
            from openrouter_attribution.langchain import OpenRouterEmbeddings

            model: Any = OpenRouterEmbeddings(model=MODEL, base_url=base_url, api_key=API_KEY, encoding_format=encoding)
            self._query, self._documents = model.embed_query, model.embed_documents
            self.name, self.label = "ours-lc", "ours: langchain.OpenRouterEmbeddings"
        else:
            from openrouter_attribution.llama_index import OpenRouterEmbedding

            model = OpenRouterEmbedding(model=MODEL, base_url=base_url, api_key=API_KEY, encoding_format=encoding)
            self._query, self._documents = model.get_query_embedding, model.get_text_embedding_batch
            self.name, self.label = "ours-li", "ours: llama_index.OpenRouterEmbedding"
        if encoding != "base64":
            self.name, self.label = f"{self.name}-{encoding}", f"{self.label} ({encoding})"

    def query(self) -> None:
        with self._context:
            _check([self._query(QUERY)], 1, self.name)

    def documents(self) -> None:
        with self._context:
            _check(self._documents(TEXTS), DOCS, self.name)


class LangChainOpenAI(Adapter):
    name = "lc-openai"
    label = "langchain_openai.OpenAIEmbeddings"

    def __init__(self, base_url: str) -> None:
        try:
            from langchain_openai import OpenAIEmbeddings
        except ImportError as err:
            raise Skip(f"langchain-openai is not installed ({err})") from err
        # No token-length check: it needs tiktoken's encoding files, downloaded on first use.
        self.model = OpenAIEmbeddings(model=MODEL, base_url=base_url, api_key=API_KEY, check_embedding_ctx_length=False)

    def query(self) -> None:
        _check([self.model.embed_query(QUERY)], 1, self.name)

    def documents(self) -> None:
        _check(self.model.embed_documents(TEXTS), DOCS, self.name)


@dataclass(frozen=True)
class Spec:
    name: str
    label: str
    factory: Callable[[str], Any]
    required: bool = False
    """A client whose failure fails the run (the target needs it)."""


CLIENTS: tuple[Spec, ...] = (
    Spec(REFERENCE, "openai SDK embeddings.create (reference)", lambda url: OpenAISDK(url, None), required=True),
    Spec("openai-float", "openai SDK embeddings.create (float)", lambda url: OpenAISDK(url, "float")),
    Spec(OURS_LC, "ours: langchain.OpenRouterEmbeddings", lambda url: Ours(url, "langchain", "base64"), required=True),
    Spec("ours-lc-float", "ours: langchain.OpenRouterEmbeddings (float)", lambda url: Ours(url, "langchain", "float")),
    Spec("ours-li", "ours: llama_index.OpenRouterEmbedding", lambda url: Ours(url, "llama_index", "base64")),
    Spec("lc-openai", "langchain_openai.OpenAIEmbeddings", LangChainOpenAI),
)


def cpu_us(call: Callable[[], None], calls: int) -> float:
    """Client CPU µs per call of ``calls`` calls of ``call``."""
    start = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - start) / calls * 1e6


def build(spec: Spec, base_url: str, benchmark: str, first: Callable[[Any], object]) -> Any:
    """The adapter of ``spec``, after ``first(adapter)`` ran once (its calls checked).

    Raises:
        Skip: the client is not installed, or it failed and is not required.
        RuntimeError: a required client failed (a broken benchmark).
    """
    try:
        adapter = spec.factory(base_url)
        first(adapter)
    except Skip:
        raise
    except Exception as err:
        if spec.required:
            raise RuntimeError(f"the {benchmark} benchmark cannot measure {spec.name}: {err}") from err
        raise Skip(f"{type(err).__name__}: {err}".splitlines()[0][:200]) from err
    return adapter


def measure(base_url: str, *, smoke: bool, rounds: int, target_s: float) -> dict[str, Any]:
    """Median client CPU µs per query and per batch call, for every client that can be measured.

    Raises:
        RuntimeError: the reference or our LangChain model cannot be measured (a broken benchmark).
    """
    clients: dict[str, dict[str, Any]] = {}
    adapters: dict[str, tuple[Adapter, int, int]] = {}
    for spec in CLIENTS:
        clients[spec.name] = {"label": spec.label, "skipped": None}
        try:
            adapter = build(spec, base_url, "embeddings", lambda a: (a.query(), a.documents()))
        except Skip as err:
            clients[spec.name]["skipped"] = str(err)
            continue
        warm = 2 if smoke else 10
        per_query = cpu_us(adapter.query, warm)
        per_batch = cpu_us(adapter.documents, warm)
        adapters[spec.name] = (adapter, max(3, min(3000, int(target_s / (per_query / 1e6)))),
                               max(2, min(500, int(target_s / (per_batch / 1e6)))))  # fmt: skip
    samples: dict[str, dict[str, list[float]]] = {name: {"query": [], "documents": []} for name in adapters}
    names = list(adapters)
    for round_no in range(rounds):
        shift = round_no % max(1, len(names))
        for name in names[shift:] + names[:shift]:  # round-robin, as for the chat clients
            adapter, queries, batches = adapters[name]
            samples[name]["query"].append(cpu_us(adapter.query, queries))
            samples[name]["documents"].append(cpu_us(adapter.documents, batches))
    for name, values in samples.items():
        clients[name]["query_cpu_us"] = statistics.median(values["query"])
        clients[name]["documents_cpu_us"] = statistics.median(values["documents"])
        clients[name]["samples"] = values
    return {"clients": clients, "docs": DOCS, "dims": DIMS, "wire": _wire(base_url, repeats=3 if smoke else 200)}


def _wire(base_url: str, *, repeats: int) -> dict[str, dict[str, float]]:
    """Bytes of one batch answer and our CPU to read it (JSON decoding + parsing), per encoding."""
    from openrouter_attribution.wire.embeddings import parse_embeddings

    out: dict[str, dict[str, float]] = {}
    for encoding in ("float", "base64"):
        body = json.dumps({"model": MODEL, "input": TEXTS, "encoding_format": encoding}).encode()
        request = urllib.request.Request(base_url + "/embeddings", data=body, method="POST",
                                         headers={"Authorization": f"Bearer {API_KEY}",
                                                  "Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as answer:
            raw = answer.read()

        def read(raw: bytes = raw) -> None:
            _check(parse_embeddings(json.loads(raw), expected=DOCS).vectors, DOCS, "parse_embeddings")

        samples = [cpu_us(read, max(1, repeats // 10)) for _ in range(10)]
        out[encoding] = {"bytes": len(raw), "decode_us": statistics.median(samples)}
    return out


def targets(embeddings: dict[str, Any]) -> list[dict[str, Any]]:
    """The embeddings target: our LangChain embeddings' client CPU per call vs the raw SDK's, both calls."""
    clients = embeddings.get("clients", {})
    ours, ref = clients.get(OURS_LC, {}), clients.get(REFERENCE, {})
    out = []
    for call, label in (("query", "1 text"), ("documents", f"{DOCS} texts")):
        value, reference = ours.get(f"{call}_cpu_us"), ref.get(f"{call}_cpu_us")
        ratio = value / reference if value and reference else None
        out.append({"target": f"LangChain embeddings CPU per call ({label}) <= {TARGET:.1f}x SDK embeddings.create",
                    "measured": f"{ratio:.2f}x" if ratio else "n/a",
                    "met": ratio <= TARGET if ratio else None})  # fmt: skip
    return out


def markdown(embeddings: dict[str, Any]) -> list[str]:
    """The embeddings section of the report."""
    clients = embeddings.get("clients", {})
    ref = clients.get(REFERENCE, {})

    def cell(data: dict[str, Any], key: str) -> str:
        value, reference = data.get(key), ref.get(key)
        if value is None:
            return "–"
        return f"{value:,.0f}" + (f" ({value / reference:.2f}x)" if reference else "")

    lines = ["", f"## Embeddings: client CPU per call ({embeddings.get('dims')} dimensions)", "",
             f"| client | query, 1 text: CPU µs/call | batch, {embeddings.get('docs')} texts: CPU µs/call |",
             "|---|---|---|"]  # fmt: skip
    skipped = []
    for data in clients.values():
        if data.get("skipped"):
            skipped.append(f"- **{data['label']}** skipped: {data['skipped']}")
            continue
        lines.append(f"| {data['label']} | {cell(data, 'query_cpu_us')} | {cell(data, 'documents_cpu_us')} |")
    lines += ["", *skipped] if skipped else []
    wire = embeddings.get("wire", {})
    if wire:
        lines += ["", f"`encoding_format` (one answer of {embeddings.get('docs')} vectors, read by our client):", ""]
        lines += ["| encoding_format | bytes on the wire | CPU µs to read (JSON + parse) |", "|---|---|---|"]
        for encoding, data in wire.items():
            lines.append(f"| {encoding} | {data['bytes']:,} | {data['decode_us']:,.0f} |")
    return lines
