"""Rerank benchmark: client CPU per rerank call, ours against the ``openrouter`` SDK and a bare HTTP post.

Part of ``run.py`` (``make bench`` and the smoke run of ``make test``), against ``server.py``'s
``/rerank``. Each client ranks :data:`DOCS` short documents for one query, keeps :data:`TOP_N`, and checks
what it gets. The reference is the official ``openrouter`` SDK's ``rerank.rerank`` when it is installed
(the ``testing`` extra); a bare ``httpx`` post (``json()`` of the answer, no model) is the floor and the
reference when the SDK is not there. Our rerankers are measured with a user from ``user_context``, so
attribution (and LangChain documents / LlamaIndex nodes in and out) is part of their cost.
"""

from __future__ import annotations

import statistics
from typing import Any

from clients import API_KEY, Skip
from embeddings import Spec, build, cpu_us

MODEL = "cohere/rerank-v3.5"
DOCS = 20
TOP_N = 3
TEXTS = [f"document number {i} about a topic" for i in range(DOCS)]
QUERY = "which document is about the topic?"
SDK = "openrouter-sdk"
FLOOR = "httpx"
OURS_LC = "ours-lc"
TARGET = 1.0
"""Our LangChain reranker's client CPU per call must be at most this times the reference's."""


def _check(count: int, client: str) -> None:
    if count != TOP_N:
        raise RuntimeError(f"{client} returned {count} results, not {TOP_N}")


class Adapter:
    """One rerank client bound to the benchmark server."""

    def rerank(self) -> None:
        raise NotImplementedError


class OpenRouterSDK(Adapter):
    def __init__(self, base_url: str) -> None:
        try:
            from openrouter import OpenRouter
        except ImportError as err:
            raise Skip(f"the openrouter SDK is not installed ({err})") from err
        self.client = OpenRouter(api_key=API_KEY, server_url=base_url)

    def rerank(self) -> None:
        answer = self.client.rerank.rerank(model=MODEL, query=QUERY, documents=TEXTS, top_n=TOP_N)
        _check(len(answer.results), SDK)


class BareHTTP(Adapter):
    def __init__(self, base_url: str) -> None:
        try:
            import httpx2 as httpx  # the HTTP stack the openai SDK itself runs on
        except ImportError:
            try:
                import httpx
            except ImportError as err:
                raise Skip("neither httpx2 nor httpx is installed") from err
        self.client = httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"})
        self.url = base_url + "/rerank"
        self.body = {"model": MODEL, "query": QUERY, "documents": TEXTS, "top_n": TOP_N}

    def rerank(self) -> None:
        _check(len(self.client.post(self.url, json=self.body).json()["results"]), FLOOR)


class Ours(Adapter):
    """Our rerankers, each call made for a user set with ``user_context``."""

    def __init__(self, base_url: str, framework: str) -> None:
        from openrouter_attribution import user_context

        self._context = user_context("app_42")
        if framework == "langchain":
            from langchain_core.documents import Document

            from openrouter_attribution.langchain import OpenRouterRerank

            model: Any = OpenRouterRerank(model=MODEL, top_n=TOP_N, base_url=base_url, api_key=API_KEY)
            documents = [Document(text) for text in TEXTS]
            self._call = lambda: model.compress_documents(documents, QUERY)
        else:
            from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

            from openrouter_attribution.llama_index import OpenRouterRerank as LlamaIndexRerank

            reranker = LlamaIndexRerank(model=MODEL, top_n=TOP_N, base_url=base_url, api_key=API_KEY)
            nodes = [NodeWithScore(node=TextNode(text=text)) for text in TEXTS]
            query = QueryBundle(QUERY)
            self._call = lambda: reranker.postprocess_nodes(nodes, query)
        self.name = f"ours-{'lc' if framework == 'langchain' else 'li'}"

    def rerank(self) -> None:
        with self._context:
            _check(len(self._call()), self.name)


CLIENTS: tuple[Spec, ...] = (
    Spec(SDK, "openrouter SDK rerank.rerank (reference)", OpenRouterSDK),
    Spec(FLOOR, "bare httpx post (floor)", BareHTTP, required=True),
    Spec(OURS_LC, "ours: langchain.OpenRouterRerank", lambda url: Ours(url, "langchain"), required=True),
    Spec("ours-li", "ours: llama_index.OpenRouterRerank", lambda url: Ours(url, "llama_index")),
)


def measure(base_url: str, *, smoke: bool, rounds: int, target_s: float) -> dict[str, Any]:
    """Median client CPU µs per rerank call, for every client that can be measured.

    Raises:
        RuntimeError: the floor or our LangChain reranker cannot be measured (a broken benchmark).
    """
    clients: dict[str, dict[str, Any]] = {}
    adapters: dict[str, tuple[Adapter, int]] = {}
    for spec in CLIENTS:
        clients[spec.name] = {"label": spec.label, "skipped": None}
        try:
            adapter = build(spec, base_url, "rerank", lambda a: a.rerank())
        except Skip as err:
            clients[spec.name]["skipped"] = str(err)
            continue
        per_call = cpu_us(adapter.rerank, 2 if smoke else 10)
        adapters[spec.name] = (adapter, max(3, min(3000, int(target_s / (per_call / 1e6)))))
    samples: dict[str, list[float]] = {name: [] for name in adapters}
    names = list(adapters)
    for round_no in range(rounds):
        shift = round_no % max(1, len(names))
        for name in names[shift:] + names[:shift]:  # round-robin, as for the chat clients
            adapter, calls = adapters[name]
            samples[name].append(cpu_us(adapter.rerank, calls))
    for name, values in samples.items():
        clients[name]["cpu_us"] = statistics.median(values)
        clients[name]["samples"] = values
    return {"clients": clients, "docs": DOCS, "top_n": TOP_N}


def _reference(clients: dict[str, Any]) -> str:
    return SDK if clients.get(SDK, {}).get("cpu_us") else FLOOR


def targets(rerank: dict[str, Any]) -> list[dict[str, Any]]:
    """The rerank target: our LangChain reranker's client CPU per call vs the SDK's (else the bare post's)."""
    clients = rerank.get("clients", {})
    reference = _reference(clients)
    value, base = clients.get(OURS_LC, {}).get("cpu_us"), clients.get(reference, {}).get("cpu_us")
    ratio = value / base if value and base else None
    against = "openrouter SDK rerank.rerank" if reference == SDK else "a bare httpx post"
    return [{"target": f"LangChain rerank CPU per call <= {TARGET:.1f}x {against}",
             "measured": f"{ratio:.2f}x" if ratio else "n/a", "met": ratio <= TARGET if ratio else None}]  # fmt: skip


def markdown(rerank: dict[str, Any]) -> list[str]:
    """The rerank section of the report."""
    clients = rerank.get("clients", {})
    sdk, floor = clients.get(SDK, {}).get("cpu_us"), clients.get(FLOOR, {}).get("cpu_us")

    def ratio(value: float, base: float | None) -> str:
        return f"{value / base:.2f}x" if base else "–"

    lines = ["", f"## Rerank: client CPU per call ({rerank.get('docs')} documents, top {rerank.get('top_n')})", "",
             "| client | CPU µs/call | vs openrouter SDK | vs bare httpx |", "|---|---|---|---|"]  # fmt: skip
    skipped = []
    for data in clients.values():
        if data.get("skipped"):
            skipped.append(f"- **{data['label']}** skipped: {data['skipped']}")
            continue
        value = data["cpu_us"]
        lines.append(f"| {data['label']} | {value:,.0f} | {ratio(value, sdk)} | {ratio(value, floor)} |")
    return lines + (["", *skipped] if skipped else [])
