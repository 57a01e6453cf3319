"""Sending one request with the right key: the model's own, or its end-user's (per-user keys).

:class:`Sender` is the call pipeline's last step before the transport. Without per-user keys it
hands the body to :mod:`~openrouter_attribution.transport` as it is. With them
(:class:`~openrouter_attribution.OpenRouterUserKeys`), a request whose user is known goes out with
that user's key; a ``401`` for that key (deleted on OpenRouter) creates the key again and sends
once more; a key over its OpenRouter limit raises ``BudgetExceededError`` and is not retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from openrouter_attribution.errors import APIError
from openrouter_attribution.transport import (
    CHAT_PATH,
    ConnectionSettings,
    apost_json,
    apost_stream,
    post_json,
    post_stream,
)

if TYPE_CHECKING:
    from openrouter_attribution.keys import OpenRouterUserKeys

__all__ = ["Sender"]

_NONE: Any = object()


class Sender:
    """Sends requests over one connection, each with its user's key when there are per-user keys."""

    __slots__ = ("connection", "user_keys")

    def __init__(self, connection: ConnectionSettings, user_keys: OpenRouterUserKeys | None = None) -> None:
        self.connection = connection
        self.user_keys = user_keys
        """Per-end-user OpenRouter keys (``None``: every request carries the model's own key)."""

    def post(self, body: dict[str, Any], user: str | None, path: str = CHAT_PATH) -> Any:
        """POST ``body`` to ``path``; returns the decoded JSON answer."""
        keys = self.user_keys
        if keys is None or user is None:
            return post_json(self.connection, body, path=path)
        try:
            return post_json(self.connection, body, path=path, key=keys.key_for(user))
        except APIError as err:
            key = self._again(err, keys, user)
        return post_json(self.connection, body, path=path, key=key)

    async def apost(self, body: dict[str, Any], user: str | None, path: str = CHAT_PATH) -> Any:
        """Async :meth:`post`."""
        keys = self.user_keys
        if keys is None or user is None:
            return await apost_json(self.connection, body, path=path)
        try:
            return await apost_json(self.connection, body, path=path, key=await keys.akey_for(user))
        except APIError as err:
            key = await asyncio.to_thread(self._again, err, keys, user)
        return await apost_json(self.connection, body, path=path, key=key)

    def stream(self, body: dict[str, Any], user: str | None, path: str = CHAT_PATH) -> Iterator[Any]:
        """POST a streamed request to ``path``; yields each event (a refused key is handled before the first)."""
        keys = self.user_keys
        if keys is None or user is None:
            yield from post_stream(self.connection, body, path=path)
            return
        events = post_stream(self.connection, body, path=path, key=keys.key_for(user))
        try:
            first = next(events, _NONE)  # a refused request raises here, before anything was delivered
        except APIError as err:
            events = post_stream(self.connection, body, path=path, key=self._again(err, keys, user))
            first = next(events, _NONE)
        if first is not _NONE:
            yield first
            yield from events

    async def astream(self, body: dict[str, Any], user: str | None, path: str = CHAT_PATH) -> AsyncIterator[Any]:
        """Async :meth:`stream`."""
        keys = self.user_keys
        if keys is None or user is None:
            async for event in apost_stream(self.connection, body, path=path):
                yield event
            return
        events = apost_stream(self.connection, body, path=path, key=await keys.akey_for(user))
        try:
            first = await anext(events, _NONE)
        except APIError as err:
            key = await asyncio.to_thread(self._again, err, keys, user)
            events = apost_stream(self.connection, body, path=path, key=key)
            first = await anext(events, _NONE)
        if first is not _NONE:
            yield first
            async for event in events:
                yield event

    @staticmethod
    def _again(err: APIError, keys: OpenRouterUserKeys, user: str) -> str:
        """The key to send with once more after ``err``: a key OpenRouter no longer knows (401) is created
        again. Anything else raises: ``BudgetExceededError`` for a key over its limit, else ``err``."""
        if err.status_code != 401:
            over_limit = keys.limit_error(user, err)
            if over_limit is not None:
                raise over_limit from err
            raise err
        keys.forget(user)
        return keys.key_for(user)
