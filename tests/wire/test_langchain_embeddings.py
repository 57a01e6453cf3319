"""OpenRouterEmbeddings (LangChain) on the wire: every call style x every user source, batches, errors, ledger."""

from __future__ import annotations

import asyncio
import doctest
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda

from openrouter_attribution import UsageLedger, UserIdPolicy, errors, user_context
from openrouter_attribution.errors import UserIdError
from tests.wire.conftest import STATUS_FAULTS
from tests.wire.embeddings_helpers import attributions, make_lc_embeddings, make_li_embedding, server_costs_by_user

TEXTS = ["alpha beta", "gamma delta"]

# Each call style embeds through one public method; async ones return a coroutine.
CALL_STYLES: dict[str, Callable[[Any], Any]] = {
    "embed_documents": lambda e: e.embed_documents(TEXTS),
    "embed_query": lambda e: e.embed_query(TEXTS[0]),
    "aembed_documents": lambda e: e.aembed_documents(TEXTS),
    "aembed_query": lambda e: e.aembed_query(TEXTS[0]),
}


def _call(style: str, embeddings: Any, config: dict[str, Any] | None = None) -> Any:
    """Run one call style, inside a runnable invoked with ``config`` when one is given (as in a chain)."""
    call = CALL_STYLES[style]
    if style.startswith("a"):

        async def inner(_: Any) -> Any:
            return await call(embeddings)

        if config is None:
            return asyncio.run(call(embeddings))
        return asyncio.run(RunnableLambda(inner).ainvoke(None, config=config))
    if config is None:
        return call(embeddings)
    return RunnableLambda(lambda _: call(embeddings)).invoke(None, config=config)


SOURCES = {
    "configurable": ({"configurable": {"user_id": "app_cfg", "session_id": "s_cfg"}}, ("app_cfg", "s_cfg")),
    "metadata": ({"metadata": {"user_id": "app_meta", "session_id": "s_meta"}}, ("app_meta", "s_meta")),
    "langfuse": ({"metadata": {"langfuse_user_id": "app_lf", "langfuse_session_id": "s_lf"}}, ("app_lf", "s_lf")),
    "thread_id": ({"configurable": {"user_id": "app_t", "thread_id": "thread-1"}}, ("app_t", "thread-1")),
}


@pytest.mark.parametrize("style", CALL_STYLES)
@pytest.mark.parametrize("source", SOURCES)
def test_run_config_sources(fake_openrouter, style, source):
    config, expected = SOURCES[source]
    vectors = _call(style, make_lc_embeddings(fake_openrouter), config)
    assert vectors
    requests = fake_openrouter.embeddings_requests
    assert requests
    assert attributions(requests) == [expected] * len(requests)


@pytest.mark.parametrize("style", CALL_STYLES)
def test_user_context(fake_openrouter, style):
    with user_context("app_ctx", session_id="s_ctx"):
        _call(style, make_lc_embeddings(fake_openrouter))
    assert attributions(fake_openrouter.embeddings_requests) == [("app_ctx", "s_ctx")]


@pytest.mark.parametrize("style", CALL_STYLES)
def test_model_default(fake_openrouter, style):
    _call(style, make_lc_embeddings(fake_openrouter, user="app_default", session_id="s_default"))
    assert attributions(fake_openrouter.embeddings_requests) == [("app_default", "s_default")]


@pytest.mark.parametrize("style", CALL_STYLES)
def test_resolution_order_config_then_context_then_default(fake_openrouter, style):
    embeddings = make_lc_embeddings(fake_openrouter, user="app_default")
    with user_context("app_ctx", session_id="s_ctx"):
        _call(style, embeddings, {"configurable": {"user_id": "app_cfg"}})
        _call(style, embeddings)
    _call(style, embeddings)
    assert attributions(fake_openrouter.embeddings_requests) == [
        ("app_cfg", "s_ctx"),  # each field resolves on its own: the session comes from user_context
        ("app_ctx", "s_ctx"),
        ("app_default", None),
    ]


def test_custom_keys(fake_openrouter):
    embeddings = make_lc_embeddings(fake_openrouter, user_id_key="account", session_id_key="conversation")
    _call("embed_query", embeddings, {"configurable": {"account": "app_9", "conversation": "c-1"}})
    assert attributions(fake_openrouter.embeddings_requests) == [("app_9", "c-1")]


@pytest.mark.parametrize("style", ["embed_documents", "aembed_documents"])
def test_texts_are_sent_in_batches_each_attributed(fake_openrouter, style):
    texts = [f"text number {i}" for i in range(7)]
    embeddings = make_lc_embeddings(fake_openrouter, batch_size=3, dimensions=64)
    with user_context("app_b"):
        vectors = embeddings.embed_documents(texts) if style == "embed_documents" else asyncio.run(
            embeddings.aembed_documents(texts))  # fmt: skip
    requests = fake_openrouter.embeddings_requests
    assert [r.body["input"] for r in requests] == [texts[0:3], texts[3:6], texts[6:7]]
    assert {r.body["user"] for r in requests} == {"app_b"}
    assert {r.body["dimensions"] for r in requests} == {64}
    assert len(vectors) == 7
    assert {len(v) for v in vectors} == {64}
    # In order: each vector is the one the server gives for that text alone.
    assert vectors[4] == embeddings.embed_query(texts[4])


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_both_encodings_give_the_same_vectors(fake_openrouter, encoding_format):
    base = make_lc_embeddings(fake_openrouter, encoding_format="float").embed_documents(TEXTS)
    other = make_lc_embeddings(fake_openrouter, encoding_format=encoding_format).embed_documents(TEXTS)
    assert fake_openrouter.embeddings_requests[-1].body["encoding_format"] == encoding_format
    assert all(isinstance(value, float) for value in other[0])
    assert max(abs(a - b) for va, vb in zip(base, other, strict=True) for a, b in zip(va, vb, strict=True)) < 1e-8


def test_app_headers_input_type_provider_and_extra_body(fake_openrouter):
    embeddings = make_lc_embeddings(
        fake_openrouter, app_url="https://example.app", app_title="Demo", input_type="search_document",
        provider={"allow_fallbacks": False}, extra_body={"encoding_format": "float"},
    )  # fmt: skip
    embeddings.embed_query("hello")
    (request,) = fake_openrouter.embeddings_requests
    assert request.headers["HTTP-Referer"] == "https://example.app"
    assert request.headers["X-Title"] == "Demo"
    assert request.body["input_type"] == "search_document"
    assert request.body["provider"] == {"allow_fallbacks": False}
    assert request.body["encoding_format"] == "float"


def test_trace_from_context_is_sent_and_metadata_is_not(fake_openrouter):
    with user_context("app_tr", trace={"trace_id": "t-1"}, metadata={"plan": "pro"}):
        make_lc_embeddings(fake_openrouter).embed_query("hello")
    body = fake_openrouter.embeddings_requests[0].body
    assert body["trace"] == {"trace_id": "t-1"}
    assert "metadata" not in body


@pytest.mark.parametrize("make", [make_lc_embeddings, make_li_embedding], ids=["langchain", "llama_index"])
def test_metadata_an_embeddings_call_does_not_send_is_checked_like_chat(fake_openrouter, make):
    # Embeddings never send metadata, but the ledger keeps it: an e-mail address in it is refused as the
    # chat models refuse it, before anything is sent.
    embeddings = make(fake_openrouter)
    embed = getattr(embeddings, "embed_query", None) or embeddings.get_query_embedding
    with user_context("app_md", metadata={"contact": "ada@example.com"}), pytest.raises(UserIdError, match="contact"):
        embed("hello")
    assert fake_openrouter.embeddings_requests == []
    with user_context("app_md", metadata={"tenant": "acme"}):
        embed("hello")
    (request,) = fake_openrouter.embeddings_requests
    assert request.body["user"] == "app_md"
    assert "metadata" not in request.body


@pytest.mark.parametrize("style", CALL_STYLES)
def test_policy_pseudonymises_the_user(fake_openrouter, style):
    policy = UserIdPolicy(prefix="app_", hash_key="hash-key-for-tests-0123456789abcdef")
    _call(style, make_lc_embeddings(fake_openrouter, user_policy=policy), {"configurable": {"user_id": "acct-42"}})
    (request,) = fake_openrouter.embeddings_requests
    assert request.body["user"] == policy.apply("acct-42")
    assert "acct-42" not in str(request.body)


# -- bad input: a typed error and nothing sent ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda e: e.embed_documents(["fine", ""]), errors.InvalidInputError),
        (lambda e: e.embed_documents(["fine", None]), errors.InvalidInputError),
        (lambda e: e.embed_documents("a string, not a list"), errors.InvalidInputError),
        (lambda e: e.embed_query(""), errors.InvalidInputError),
        (lambda e: asyncio.run(e.aembed_documents([""])), errors.InvalidInputError),
        (lambda e: asyncio.run(e.aembed_query(42)), errors.InvalidInputError),
    ],
)
def test_bad_input_raises_before_sending(fake_openrouter, call, error):
    with pytest.raises(error):
        call(make_lc_embeddings(fake_openrouter))
    assert fake_openrouter.requests == []


@pytest.mark.parametrize("user", ["bad\nid", "u" * 257, "   "])
def test_invalid_user_id_raises_before_sending(fake_openrouter, user):
    embeddings = make_lc_embeddings(fake_openrouter)
    with user_context(user), pytest.raises(errors.UserIdError):
        embeddings.embed_query("x")
    assert fake_openrouter.requests == []


def test_empty_list_sends_nothing(fake_openrouter):
    embeddings = make_lc_embeddings(fake_openrouter, require_user=True)
    assert embeddings.embed_documents([]) == []
    assert asyncio.run(embeddings.aembed_documents([])) == []
    assert fake_openrouter.requests == []


@pytest.mark.parametrize("style", CALL_STYLES)
def test_require_user_refuses_unattributed_calls(fake_openrouter, style):
    with pytest.raises(errors.MissingUserError) as info:
        _call(style, make_lc_embeddings(fake_openrouter, require_user=True))
    assert "config['configurable']['user_id']" in str(info.value)
    assert "user_context()" in str(info.value)
    assert fake_openrouter.requests == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dimensions": 0}, "positive integer"),
        ({"dimensions": 4096}, "at most 1536"),
        ({"batch_size": 5000}, "from 1 to 2048"),
        ({"encoding_format": "int8"}, "'float' or 'base64'"),
        ({"dimension": 64}, "has no option 'dimension' (did you mean 'dimensions'?)"),
        ({"api_key": None}, "No OpenRouter API key"),
    ],
)
def test_bad_configuration_raises_at_construction(fake_openrouter, options, message):
    with pytest.raises(errors.ConfigurationError) as info:
        make_lc_embeddings(fake_openrouter, **options)
    assert message in str(info.value)
    assert fake_openrouter.requests == []  # not even GET /embeddings/models


def test_api_key_never_shows(fake_openrouter):
    embeddings = make_lc_embeddings(fake_openrouter)
    assert fake_openrouter.api_key not in repr(embeddings)
    assert fake_openrouter.api_key not in str(embeddings.model_dump())


@pytest.mark.parametrize("make", [make_lc_embeddings, make_li_embedding])
def test_a_pickled_embeddings_model_does_not_hold_the_api_key(fake_openrouter, make, monkeypatch):
    import pickle

    data = pickle.dumps(make(fake_openrouter, user="app_1"))
    assert fake_openrouter.api_key.encode() not in data
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)  # unpickling reads the key again
    restored = pickle.loads(data)
    embed = getattr(restored, "embed_query", None) or restored.get_query_embedding
    assert len(embed("hi")) == 1536
    assert attributions(fake_openrouter.embeddings_requests) == [("app_1", None)]


# -- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "error_type"), STATUS_FAULTS)
@pytest.mark.parametrize("asynchronous", [False, True])
def test_status_faults_map_to_typed_errors(fake_openrouter, fault, error_type, asynchronous):
    embeddings = make_lc_embeddings(fake_openrouter, default_headers={"X-Fake-Fault": fault})
    with pytest.raises(error_type) as info:
        asyncio.run(embeddings.aembed_query("hi")) if asynchronous else embeddings.embed_query("hi")
    assert info.value.status_code == int(fault)
    if fault == "429":
        assert info.value.retry_after is not None


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        ("mid-stream-error", errors.ProviderUnavailableError),
        ("malformed-chunk", errors.InvalidResponseError),
        ("drop-connection", errors.APIConnectionError),
    ],
)
def test_other_faults(fake_openrouter, fault, error_type):
    with pytest.raises(error_type):
        make_lc_embeddings(fake_openrouter, default_headers={"X-Fake-Fault": fault}).embed_query("hi")


def test_timeout(fake_openrouter):
    embeddings = make_lc_embeddings(fake_openrouter, timeout=0.3, default_headers={"X-Fake-Fault": "slow-first-byte"})
    with pytest.raises(errors.APITimeoutError):
        embeddings.embed_query("hi")


def test_the_sdk_retries_a_429_once(fake_openrouter):
    fake_openrouter.inject_fault("429", retry_after=0)
    assert make_lc_embeddings(fake_openrouter, max_retries=1).embed_query("hi")
    assert len(fake_openrouter.embeddings_requests) == 2


# -- the ledger ---------------------------------------------------------------------------------------------


def test_one_record_per_request_with_tokens_and_cost(fake_openrouter, tmp_path):
    ledger = UsageLedger(tmp_path / "usage.db")
    embeddings = make_lc_embeddings(fake_openrouter, ledger=ledger, batch_size=2)
    with user_context("app_1", session_id="s-1"):
        embeddings.embed_documents([f"document {i}" for i in range(5)])  # 3 requests
    asyncio.run(_aquery(embeddings, "app_2"))
    with pytest.raises(errors.RateLimitError):
        make_lc_embeddings(fake_openrouter, ledger=ledger, default_headers={"X-Fake-Fault": "429"}).embed_documents(
            ["x"]
        )
    records = list(ledger.records())
    ok = [r for r in records if r.outcome == "ok"]
    assert len(ok) == 4
    assert {r.generation_id for r in ok} == set(fake_openrouter.generations)
    charged = server_costs_by_user(fake_openrouter)
    assert [r.cost for r in ok if r.user == "app_2"] == [charged["app_2"]]
    totals = {row.key: row for row in ledger.totals(by="user")}
    assert totals["app_1"].requests == 3
    assert totals["app_1"].cost == charged["app_1"]
    assert totals["app_1"].prompt_tokens == sum(
        g["tokens_prompt"] for g in fake_openrouter.generations.values() if g["user"] == "app_1"
    )
    assert all(r.framework == "langchain" and not r.streamed and r.session_id in ("s-1", None) for r in records)
    assert all(r.model_requested == "openai/text-embedding-3-small" for r in records)
    assert {r.kind for r in records} == {"embeddings"}
    assert {row.key: row.requests for row in ledger.totals(by="kind")} == {"embeddings": 5}
    failed = [r for r in records if r.outcome != "ok"]
    assert [(f.outcome, f.cost) for f in failed] == [("RateLimitError", None)]
    ledger.close()


async def _aquery(embeddings: Any, user: str) -> list[float]:
    async with user_context(user):
        return await embeddings.aembed_query("question")


def test_call_styles_cover_the_embeddings_interface():
    from langchain_core.embeddings import Embeddings

    abstract = {name for name, _ in inspect.getmembers(Embeddings) if name.startswith(("embed", "aembed"))}
    assert abstract == set(CALL_STYLES)


def test_docstring_example_runs():
    from openrouter_attribution.langchain import embeddings

    results = doctest.testmod(embeddings)
    assert results.failed == 0
    assert results.attempted > 0
