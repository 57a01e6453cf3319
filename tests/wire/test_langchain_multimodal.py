"""Image content blocks reach OpenRouter as OpenAI-format image parts, next to the text."""

from __future__ import annotations

import base64

import pytest
from langchain_core.messages import HumanMessage

# A 1x1 transparent PNG.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4e00000000049454e44ae426082"
    )
).decode()


@pytest.mark.parametrize(
    ("block", "url"),
    [
        ({"type": "image", "base64": PNG, "mime_type": "image/png"}, f"data:image/png;base64,{PNG}"),
        ({"type": "image", "url": "https://example.test/cat.png"}, "https://example.test/cat.png"),
        ({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}, f"data:image/png;base64,{PNG}"),
    ],
)
def test_image_blocks_on_the_wire(fake_openrouter, make_chat, block, url):
    answer = make_chat().invoke([HumanMessage(content=[{"type": "text", "text": "What is this?"}, block])])
    assert answer.content
    (message,) = fake_openrouter.chat_requests[-1].body["messages"]
    assert message["role"] == "user"
    parts = message["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["type"] == "image_url"
    assert parts[1]["image_url"]["url"] == url
