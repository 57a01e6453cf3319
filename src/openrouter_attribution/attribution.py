"""Who a model call serves: the :class:`Attribution` value, :func:`user_context`, and the resolution order.

OpenRouter accepts four attribution fields in the request body: ``user`` (your
end-user's stable id), ``session_id``, ``trace`` and ``metadata``
(https://openrouter.ai/docs/guides/guides/user-tracking). This module decides,
for every call, which values go out. It is framework-neutral: the LangChain and
LlamaIndex adapters only translate their own context into :class:`Attribution`
layers and call :func:`resolve`.

Resolution order, the same for both frameworks; for each field the first
layer that sets it wins (a framework supplies only the layers it has):

1. ``explicit``: arguments of the call itself (``model.invoke(..., user=...)``,
   ``.bind(user=...)``, ``llm.chat(..., user=...)``);
2. ``authenticated``: an identity established by the serving platform, which the
   client cannot choose (LangGraph Platform's ``configurable["langgraph_auth_user_id"]``;
   the empty string there means "not authenticated"). It ranks above everything the
   client's request can carry (the config and the runtime context come from the request
   body on LangGraph Platform), so a client cannot charge its usage to another user or get
   another user blocked by sending someone else's id; only the app's own code
   (``explicit``) overrides it;
3. ``invocation``: the per-invocation framework config (LangChain's
   ``config["configurable"]`` then ``config["metadata"]``);
4. ``runtime``: the framework's per-run context object (LangGraph runtime context);
5. ``context``: the innermost active :func:`user_context` block;
6. ``ambient``: ambient framework context (LlamaIndex ``instrument_tags``);
7. ``default``: the model's own ``user`` / ``session_id`` / ``trace`` / ``metadata`` fields;
8. ``fallback``: weak hints used only for ``session_id`` when nothing else set it
   (LangGraph's ``configurable["thread_id"]``).

:func:`user_context` lives in a :mod:`contextvars` variable. asyncio tasks and LangChain's
own worker threads inherit it; a plain ``threading.Thread`` or ``ThreadPoolExecutor`` does
not: hand work to those through :func:`propagate` (or an
:class:`~openrouter_attribution.web.PropagatingExecutor`).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, ParamSpec, TypeVar

from openrouter_attribution.keywords import checked_keywords

__all__ = [
    "LAYERS",
    "Attribution",
    "Resolved",
    "current_attribution",
    "propagate",
    "resolve",
    "user_context",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")

LAYERS = ("explicit", "authenticated", "invocation", "runtime", "context", "ambient", "default", "fallback")
"""Names of the resolution layers, highest priority first."""


@dataclass(frozen=True, slots=True)
class Attribution:
    """The attribution fields of one request; ``None`` means "not set here".

    Examples:
        >>> Attribution(user="app_42", session_id="chat-7").user
        'app_42'
    """

    user: str | None = None
    """Stable id of the application's end-user (OpenRouter ``user``, at most 256 characters)."""
    session_id: str | None = None
    """Groups related requests: a conversation or an agent run (at most 256 characters)."""
    trace: Mapping[str, Any] | None = None
    """Observability metadata forwarded to OpenRouter broadcast destinations."""
    metadata: Mapping[str, str] | None = None
    """Free key/value pairs (at most 16, keys <= 64 and values <= 512 characters)."""

    def is_empty(self) -> bool:
        """True when no field is set."""
        return self.user is None and self.session_id is None and self.trace is None and self.metadata is None

    def over(self, base: Attribution | None) -> Attribution:
        """This attribution with every unset field taken from ``base``."""
        if base is None or base.is_empty():
            return self
        if self.is_empty():
            return base
        return Attribution(
            user=self.user if self.user is not None else base.user,
            session_id=self.session_id if self.session_id is not None else base.session_id,
            trace=self.trace if self.trace is not None else base.trace,
            metadata=self.metadata if self.metadata is not None else base.metadata,
        )


EMPTY = Attribution()

_CONTEXT: contextvars.ContextVar[Attribution] = contextvars.ContextVar("openrouter_attribution_context", default=EMPTY)


def current_attribution() -> Attribution:
    """The attribution set by the innermost active :func:`user_context` (empty outside any)."""
    return _CONTEXT.get()


@checked_keywords
class user_context:  # noqa: N801 - used like a function, as `with user_context(...)`
    """Attribute every model call made inside the block to an end-user.

    Works as a sync and an async context manager and as a decorator. Blocks
    nest: fields set by the inner block win, the others are inherited from the
    outer one, and the outer values come back on exit. The value lives in a
    :mod:`contextvars` variable, so threads and asyncio tasks are isolated from
    one another (a task or a LangChain ``batch`` worker sees the value that was
    active where it was started).

    Args:
        user: The end-user's stable id (an internal id or a pseudonym, never raw
            personal data; see :class:`~openrouter_attribution.UserIdPolicy`).
        session_id: Groups related requests, e.g. one conversation.
        trace: OpenRouter ``trace`` object for broadcast destinations.
        metadata: OpenRouter ``metadata`` key/value pairs.

    Examples:
        >>> from openrouter_attribution import current_attribution, user_context
        >>> with user_context("app_42", session_id="chat-7"):
        ...     with user_context(metadata={"plan": "pro"}):
        ...         current_attribution().user
        'app_42'
        >>> current_attribution().user is None
        True
    """

    __slots__ = ("_attribution", "_tokens")

    def __init__(
        self,
        user: str | None = None,
        *,
        session_id: str | None = None,
        trace: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self._attribution = Attribution(user=user, session_id=session_id, trace=trace, metadata=metadata)
        self._tokens: list[contextvars.Token[Attribution]] = []

    def __enter__(self) -> Attribution:
        value = self._attribution.over(_CONTEXT.get())
        self._tokens.append(_CONTEXT.set(value))
        return value

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _CONTEXT.reset(self._tokens.pop())

    async def __aenter__(self) -> Attribution:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: Any) -> Any:
        """Use as a decorator: the whole function (sync or async) runs inside the block."""
        import functools
        import inspect

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper

    def __repr__(self) -> str:
        fields = [name for name in ("user", "session_id", "trace", "metadata") if getattr(self._attribution, name)]
        return f"user_context(<sets {', '.join(fields) or 'nothing'}>)"


class Resolved(NamedTuple):
    """The outcome of :func:`resolve`: the values and the layer each one came from."""

    attribution: Attribution
    """The resolved values (before any identity policy is applied)."""
    user_source: str | None
    """Name of the layer that supplied ``user`` (one of :data:`LAYERS`), or ``None``."""


def resolve(
    *,
    explicit: Attribution | None = None,
    authenticated: Attribution | None = None,
    invocation: Attribution | None = None,
    runtime: Attribution | None = None,
    ambient: Attribution | None = None,
    default: Attribution | None = None,
    fallback: Attribution | None = None,
) -> Resolved:
    """Apply the resolution order (see the module docstring) to the given layers.

    The ``context`` layer is read here from the active :func:`user_context`.
    Validation and the identity policy are applied by the caller afterwards.

    Returns:
        The merged :class:`Attribution` and the name of the layer that supplied ``user``.
    """
    layers = (explicit, authenticated, invocation, runtime, _CONTEXT.get(), ambient, default, fallback)
    user = session_id = trace = metadata = None
    user_source = None
    for name, layer in zip(LAYERS, layers, strict=True):
        if layer is None or layer is EMPTY:
            continue
        if user is None and layer.user is not None:
            user, user_source = layer.user, name
        if session_id is None:
            session_id = layer.session_id
        if trace is None:
            trace = layer.trace
        if metadata is None:
            metadata = layer.metadata
    return Resolved(Attribution(user, session_id, trace, metadata), user_source)


def propagate(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Bind ``fn`` to the current context, so that it sees this :func:`user_context` wherever it runs.

    Context variables do not follow work handed to a plain thread or a ``ThreadPoolExecutor``: a
    model called there would go out with no user. ``propagate`` captures the caller's
    :mod:`contextvars` context (the user, and LangChain's run config, so child runs keep their
    parent) when it is called, and every call of the returned function runs in a copy of it, so the
    function may run in several threads at once and what it sets stays its own.

    Args:
        fn: Any callable.

    Returns:
        A callable with the same signature.

    Raises:
        TypeError: ``fn`` is not callable.

    Examples:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> from openrouter_attribution import current_attribution, propagate, user_context
        >>> with user_context("app_42"), ThreadPoolExecutor() as pool:
        ...     pool.submit(propagate(lambda: current_attribution().user)).result()
        'app_42'
    """
    if not callable(fn):
        raise TypeError(f"propagate() needs a callable, got {type(fn).__name__}.")
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def run_in_context(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return captured.copy().run(fn, *args, **kwargs)

    return run_in_context
