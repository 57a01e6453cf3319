"""Connection errors and timeouts say which host and port were tried (from base_url), never the key."""

from __future__ import annotations

import asyncio
import socket

import pytest

from openrouter_attribution import errors
from openrouter_attribution.langchain import ChatOpenRouter
from tests.wire.llama_index_helpers import MESSAGES, make_llm

SECRET_KEY = "sk-or-v1-connection-test-secret"


@pytest.fixture
def closed_port() -> int:
    """A local port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CALLS = {
    "invoke": lambda model: model.invoke("hi"),
    "ainvoke": lambda model: asyncio.run(model.ainvoke("hi")),
    "stream": lambda model: list(model.stream("hi")),
    "chat": lambda llm: llm.chat(MESSAGES),
    "astream_chat": lambda llm: asyncio.run(_adrain(llm)),
}


async def _adrain(llm):
    return [response async for response in await llm.astream_chat(MESSAGES)]


@pytest.mark.parametrize("style", CALLS)
def test_connection_error_names_host_and_port(closed_port, style):
    url = f"http://127.0.0.1:{closed_port}/api/v1"
    if style in ("chat", "astream_chat"):
        model = make_llm(type("Server", (), {"base_url": url, "api_key": SECRET_KEY})())
    else:
        model = ChatOpenRouter(base_url=url, api_key=SECRET_KEY, max_retries=0, require_user=False)
    with pytest.raises(errors.APIConnectionError) as info:
        CALLS[style](model)
    message = str(info.value)
    assert f"127.0.0.1:{closed_port}" in message
    assert "Connect" in message  # the transport's reason, e.g. ConnectError: [Errno 111] Connection refused
    assert SECRET_KEY not in message
    assert SECRET_KEY not in repr(info.value)


def test_default_https_port_is_named():
    from openrouter_attribution.wire.errors import _address

    class Url:
        host, port, scheme = "openrouter.ai", None, "https"

    class Err:
        request = type("Request", (), {"url": Url})()

    assert _address(Err()) == "openrouter.ai:443"


def test_timeout_names_host_and_port(fake_openrouter, make_chat):
    model = make_chat(timeout=0.2, default_headers={"X-Fake-Fault": "slow-first-byte", "X-Fake-Delay-Ms": "1000"})
    with pytest.raises(errors.APITimeoutError) as info:
        model.invoke("hi")
    assert f"127.0.0.1:{fake_openrouter.port}" in str(info.value)
    assert fake_openrouter.api_key not in str(info.value)
