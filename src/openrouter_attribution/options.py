"""Configuration shared by the LangChain and LlamaIndex classes.

:class:`ClientOptions` holds what every OpenRouter client of this library has:
the model, key handling, connection settings, app headers, attribution
defaults, the identity policy and the usage ledger. :class:`OpenRouterOptions`
adds the chat-completion parameters. Both are pydantic mixins: the framework
classes inherit their fields, so they accept exactly the same options and
build their requests through the same :class:`~openrouter_attribution.client.Invoker`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, field_serializer

from openrouter_attribution import environment
from openrouter_attribution.attribution import Attribution
from openrouter_attribution.errors import ConfigurationError, UserIdError
from openrouter_attribution.keywords import unknown_keywords_error
from openrouter_attribution.wire.request import check_parameter_ranges

if TYPE_CHECKING:
    from openrouter_attribution.transport import ConnectionSettings

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "ClientOptions", "OpenRouterOptions"]

DEFAULT_BASE_URL = environment.DEFAULT_BASE_URL
DEFAULT_MODEL = "openrouter/auto"

# Chat model fields sent as they are (when set) in every chat request body.
_BODY_FIELDS = (
    "model", "models", "temperature", "top_p", "top_k", "min_p", "top_a", "frequency_penalty",
    "presence_penalty", "repetition_penalty", "seed", "max_tokens", "stop", "logit_bias", "logprobs",
    "top_logprobs", "provider", "route", "reasoning", "plugins", "transforms",
)  # fmt: skip


def _key_from_env() -> SecretStr | None:
    value = environment.api_key()
    return SecretStr(value) if value else None


def _base_url_from_env() -> str:
    return environment.base_url()


def _checked_base_url(url: str) -> str:
    """``url`` without a trailing slash, or ``ConfigurationError`` unless it is http(s) with a host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid or any(ch.isspace() for ch in url):
        shown = url.rsplit("@", 1)[-1]  # never echo credentials written into a URL
        raise ConfigurationError(
            f"base_url must be an http:// or https:// URL with a host, such as {DEFAULT_BASE_URL!r}; "
            f"got {shown[:100]!r}. Set base_url=... or OPENROUTER_BASE_URL."
        )
    return url.rstrip("/")


# Attribution travels in its own fields so that the identity policy sees it; these would bypass it.
_ATTRIBUTION_BODY_FIELDS = ("user", "session_id", "metadata", "trace")


class ClientOptions(BaseModel):
    """Fields common to every OpenRouter client of this library (chat models and embeddings).

    A field left at ``None`` is not sent: the library adds no hidden defaults.
    """

    model: str = DEFAULT_MODEL
    """OpenRouter model id, e.g. ``"openai/gpt-4o-mini"``; ``openrouter/auto`` lets OpenRouter choose."""
    api_key: SecretStr | None = Field(default_factory=_key_from_env, repr=False)
    """OpenRouter API key; defaults to the ``OPENROUTER_API_KEY`` environment variable."""
    base_url: str = Field(default_factory=_base_url_from_env)
    """API base URL; defaults to ``OPENROUTER_BASE_URL`` or ``https://openrouter.ai/api/v1``."""
    timeout: float | None = None
    """Seconds before a request times out (``None``: the ``openai`` SDK's default)."""
    max_retries: int = Field(default=2, ge=0)
    """Retries of the ``openai`` SDK for 408, 429 and 5xx answers, honouring ``Retry-After``."""
    default_headers: dict[str, str] | None = None
    """Extra HTTP headers sent with every request."""
    app_url: str | None = None
    """Your app's URL, sent as ``HTTP-Referer`` for OpenRouter's app attribution."""
    app_title: str | None = None
    """Your app's name, sent as ``X-OpenRouter-Title`` (and as ``X-Title``, its older name)."""
    app_categories: list[str] | None = None
    """App categories, sent comma-separated as ``X-OpenRouter-Categories``: at most 2, each at most 30
    characters, lowercase and hyphen-separated like ``"cli-agent"`` (OpenRouter drops unknown ones)."""

    extra_body: dict[str, Any] | None = None
    """Fields sent as they are, for OpenRouter options this library does not know yet."""

    user: str | None = None
    """Default end-user for calls that resolve none (lowest priority). Checked by the policy at
    construction and kept as it is sent (e.g. the pseudonym under a hashing policy)."""
    session_id: str | None = None
    """Default session id for calls that resolve none; checked and kept as sent, like ``user``."""
    user_policy: Any = None
    """A :class:`~openrouter_attribution.UserIdPolicy` applied to every resolved ``user``, ``session_id``
    and ``metadata`` value. ``None``: personal data is refused (``identity.DEFAULT_POLICY``)."""
    require_user: bool | Literal["warn"] = "warn"
    """``"warn"`` (the default): a call that resolves no user is sent, and a
    :class:`~openrouter_attribution.MissingUserWarning` is issued once per call site; ``True``: such a
    call raises ``MissingUserError`` before sending; ``False``: unattributed calls are allowed silently."""
    ledger: Any = None
    """A :class:`~openrouter_attribution.UsageLedger` that records usage and cost of every call."""
    budget: Any = Field(default=None, exclude=True)
    """A :class:`~openrouter_attribution.UserBudget`, or a sequence of them (e.g. the user's and their
    tenant's, ``scope="metadata.tenant"``), enforced before every call: a call exceeding any is not sent.
    Needs ``ledger=``, whose SQLite or PostgreSQL store holds spend and reservations for every process
    sharing it."""
    user_keys: Any = Field(default=None, exclude=True, repr=False)
    """An :class:`~openrouter_attribution.OpenRouterUserKeys`: each call whose user is known is sent with
    that user's own OpenRouter key (created on their first call), so OpenRouter enforces their limit.
    Calls without a user use ``api_key``. Not serialized, and left out of pickles (set it again)."""

    _invoker: Any = PrivateAttr(default=None)
    _invoker_args: Any = PrivateAttr(default=None)
    _defaults_sent: bool = PrivateAttr(default=False)

    @field_serializer("user_policy")
    def _dump_policy(self, policy: Any) -> Any:
        # JSON-friendly settings, never the hash key; model_dump_json() works with a policy set.
        describe = getattr(policy, "describe", None)
        return describe() if callable(describe) else (None if policy is None else type(policy).__name__)

    @field_serializer("ledger")
    def _dump_ledger(self, ledger: Any) -> Any:
        return None if ledger is None else type(ledger).__name__

    def __getstate__(self) -> dict[Any, Any]:
        # A pickle never holds the API key (SecretStr pickles its value): it is left out here and read
        # again from OPENROUTER_API_KEY when the model is unpickled, as LangChain's
        # loads(..., secrets_from_env=True) does. The invoker (which holds the key too) is rebuilt.
        state = super().__getstate__()
        fields = {name: value for name, value in state["__dict__"].items() if name != "api_key"}
        if fields.get("user_keys") is not None:
            fields["user_keys"] = None  # it holds the management key and the secret: never pickled
        private = {**(state.get("__pydantic_private__") or {}), "_invoker": None}
        return {**state, "__dict__": fields, "__pydantic_private__": private}

    def __setstate__(self, state: dict[Any, Any]) -> None:
        key = _key_from_env()
        if key is None:
            raise ConfigurationError(
                f"Cannot unpickle {type(self).__name__}: pickles never carry the API key. Set the "
                "OPENROUTER_API_KEY environment variable in this process first."
            )
        super().__setstate__({**state, "__dict__": {**state["__dict__"], "api_key": key}})
        args = (self.__pydantic_private__ or {}).get("_invoker_args")
        if args is not None:
            self._invoker = self._build_invoker(*args)

    @classmethod
    def _check_keywords(cls, data: Mapping[str, Any]) -> None:
        """Refuse a constructor keyword that is not a field (a misspelled option would be dropped).

        Args:
            data: The constructor's keywords (the framework's spellings of a field already mapped).

        Raises:
            ConfigurationError: naming each unknown keyword and the closest field, before anything is
                built or sent.
        """
        fields = cls.model_fields
        known = set(fields).union(f.alias for f in fields.values() if f.alias)
        unknown = [name for name in data if name not in known]
        if not unknown:
            return
        raise unknown_keywords_error(
            cls.__name__,
            unknown,
            known,
            hint="; request fields OpenRouter accepts but this library does not know yet go through extra_body={...}",
        )

    def _body_params(self) -> dict[str, Any]:
        """Fields sent as they are in every request body (subclasses add theirs)."""
        return {"model": self.model}

    def _endpoint(self) -> Any:
        """The :class:`~openrouter_attribution.endpoints.Endpoint` calls go to: chat completions here."""
        from openrouter_attribution.endpoints import CHAT

        return CHAT

    def _default_attribution(self) -> Attribution:
        """The ``default`` attribution layer: the fields set on the model itself."""
        return Attribution(user=self.user, session_id=self.session_id)

    def _connection_settings(self) -> ConnectionSettings:
        """Key, base URL, timeout, retries and headers; raises ``ConfigurationError`` for bad values."""
        from openrouter_attribution.transport import ConnectionSettings

        if self.api_key is None or not self.api_key.get_secret_value():
            raise ConfigurationError(
                "No OpenRouter API key: pass api_key=... or set the OPENROUTER_API_KEY environment variable."
            )
        extra = self.default_headers or {}
        headers = {name: _header_value(f"default_headers[{name!r}]", value) for name, value in extra.items()}
        headers.update(self._app_headers())
        return ConnectionSettings(
            api_key=self.api_key.get_secret_value(),
            base_url=_checked_base_url(self.base_url),
            timeout=self.timeout,
            max_retries=self.max_retries,
            headers=tuple(sorted(headers.items())),
        )

    def _app_headers(self) -> dict[str, str]:
        """OpenRouter's app attribution headers (https://openrouter.ai/docs/app-attribution).

        ``X-OpenRouter-Title`` is the current name of the title header; ``X-Title``, its older name,
        is sent as well for deployments that only know that one.

        Raises:
            ConfigurationError: more than 2 categories, a category over 30 characters, empty or with a
                comma, or a header value with characters HTTP headers cannot carry.
        """
        headers: dict[str, str] = {}
        if self.app_url:
            headers["HTTP-Referer"] = _header_value("app_url", self.app_url)
        if self.app_title:
            title = _header_value("app_title", self.app_title)
            headers["X-OpenRouter-Title"] = title
            headers["X-Title"] = title
        if self.app_categories:
            headers["X-OpenRouter-Categories"] = ",".join(_check_categories(self.app_categories))
        return headers

    def _build_invoker(self, framework: str) -> Any:
        """Build the :class:`~openrouter_attribution.client.Invoker` for these settings.

        The model's own ``user``, ``session_id`` and ``openrouter_metadata`` go through the identity
        policy here, once, and are kept as they will be sent: the raw values are not kept anywhere
        in the model (repr, dumps, pickles, callbacks all see the sent ones).

        Raises:
            ConfigurationError: a setting cannot work, or a default id is rejected by the policy.
        """
        from openrouter_attribution.client import Invoker
        from openrouter_attribution.identity import DEFAULT_POLICY, SentId

        connection = self._connection_settings()
        params = self._body_params()
        check_parameter_ranges(params, where="set on the model")
        if self.user_policy is not None and not hasattr(self.user_policy, "apply"):
            raise ConfigurationError("user_policy must be a UserIdPolicy.")
        if self.ledger is not None and not hasattr(self.ledger, "record"):
            raise ConfigurationError("ledger must be a UsageLedger (an object with a record() method).")
        if self.user_keys is not None and not hasattr(self.user_keys, "key_for"):
            raise ConfigurationError("user_keys must be an OpenRouterUserKeys.")
        self._check_bypasses()
        policy_requires = bool(getattr(self.user_policy, "require_user", False))
        require_user = True if policy_requires else self.require_user
        if not self._defaults_sent:
            self._send_defaults(self.user_policy or DEFAULT_POLICY)
        default = self._default_attribution()
        if default.user is not None:
            default = Attribution(SentId(default.user), default.session_id, default.trace, default.metadata)
        self._invoker_args = (framework,)
        endpoint = self._endpoint()
        budget = None
        if self.budget is not None:
            if self.ledger is None:
                raise ConfigurationError(
                    "budget= needs ledger=: pass ledger=UsageLedger('usage.db') (or a PostgreSQL DSN), whose "
                    "store holds the spend and the reservations the budget is checked against."
                )
            from openrouter_attribution.usage.budgets.group import BudgetGroup

            budget = BudgetGroup(self.budget, self.ledger)
        return Invoker(
            connection=connection,
            params=params,
            extra_body=self.extra_body,
            default=default,
            policy=self.user_policy,
            require_user=require_user,
            ledger=self.ledger,
            framework=framework,
            budget=budget,
            user_keys=self.user_keys,
            endpoint=endpoint,
        )

    def _check_bypasses(self) -> None:
        """Refuse attribution set where the identity policy would not see it."""
        for name in _ATTRIBUTION_BODY_FIELDS:
            if self.extra_body and name in self.extra_body:
                field = "openrouter_metadata" if name == "metadata" else name
                raise ConfigurationError(
                    f"extra_body sets {name!r}; set {field}=... on the model (or per call) instead, so that "
                    "the identity policy applies to it."
                )
        if any(header.lower() == "x-session-id" for header in self.default_headers or {}):
            raise ConfigurationError(
                "default_headers sets x-session-id; set session_id=... instead, so that the identity policy "
                "applies to it."
            )

    def _send_defaults(self, policy: Any) -> None:
        """Replace the model's default ids and metadata with what the policy sends (at construction)."""
        values: dict[str, Any] = {"user": self.user, "session_id": self.session_id}
        metadata = getattr(self, "openrouter_metadata", None)
        try:
            if values["user"] is not None:
                values["user"] = policy.apply(values["user"])
            if values["session_id"] is not None:
                values["session_id"] = policy.apply_session(values["session_id"])
            if metadata:
                values["openrouter_metadata"] = dict(policy.apply_metadata(metadata))
        except UserIdError as err:
            raise ConfigurationError(f"The model's default attribution is refused: {err}") from err
        self.__dict__.update(values)
        self._defaults_sent = True


MAX_APP_CATEGORIES = 2
"""Categories OpenRouter accepts per request in ``X-OpenRouter-Categories``."""
MAX_CATEGORY_LENGTH = 30
"""Characters OpenRouter accepts per category."""


def _header_value(field: str, value: str) -> str:
    """``value`` if an HTTP header can carry it: printable ASCII, no line breaks (checked before any request)."""
    if not value.isascii() or not value.isprintable():
        raise ConfigurationError(
            f"{field} can only hold printable ASCII characters (it is sent as an HTTP header); "
            "remove line breaks, control and non-ASCII characters."
        )
    return value


def _check_categories(categories: list[str]) -> list[str]:
    if len(categories) > MAX_APP_CATEGORIES:
        raise ConfigurationError(
            f"app_categories has {len(categories)} entries; OpenRouter accepts at most {MAX_APP_CATEGORIES} "
            "per request. Keep the two that describe your app best."
        )
    for position, category in enumerate(categories, start=1):
        if not category.strip() or "," in category:
            raise ConfigurationError(
                f"app_categories entry {position} is empty or contains a comma; give one category per entry, "
                "e.g. ['cli-agent', 'programming-app']."
            )
        if len(category) > MAX_CATEGORY_LENGTH:
            raise ConfigurationError(
                f"app_categories entry {position} has {len(category)} characters; OpenRouter accepts at most "
                f"{MAX_CATEGORY_LENGTH}."
            )
        _header_value("app_categories", category)
    return categories


class OpenRouterOptions(ClientOptions):
    """Fields of the chat models :class:`~openrouter_attribution.langchain.ChatOpenRouter` and
    :class:`~openrouter_attribution.llama_index.OpenRouter`: the common ones plus chat parameters.
    """

    temperature: float | None = None
    """Sampling temperature."""
    top_p: float | None = None
    """Nucleus sampling."""
    top_k: int | None = None
    """Top-k sampling."""
    min_p: float | None = None
    """Minimum probability relative to the most likely token."""
    top_a: float | None = None
    """Top-a sampling."""
    frequency_penalty: float | None = None
    """Frequency penalty."""
    presence_penalty: float | None = None
    """Presence penalty."""
    repetition_penalty: float | None = None
    """Repetition penalty."""
    seed: int | None = None
    """Seed for deterministic sampling, where the provider supports it."""
    max_tokens: int | None = None
    """Upper bound on generated tokens (not sent when ``None``: no silent cap)."""
    stop: list[str] | str | None = None
    """Stop sequences."""
    logit_bias: dict[str, float] | None = None
    """Token biases."""
    logprobs: bool | None = None
    """Return log probabilities."""
    top_logprobs: int | None = None
    """Number of top log probabilities per token."""

    models: list[str] | None = None
    """Fallback models, tried in order when the primary one fails."""
    provider: dict[str, Any] | None = None
    """Provider routing preferences (``order``, ``only``, ``ignore``, ``allow_fallbacks``, ``sort``, ...)."""
    route: Literal["fallback"] | None = None
    """Routing strategy."""
    reasoning: dict[str, Any] | None = None
    """Reasoning settings (``effort``, ``max_tokens``, ``exclude``, ``enabled``)."""
    plugins: list[dict[str, Any]] | None = None
    """OpenRouter plugins (web search, file parser, ...)."""
    transforms: list[str] | None = None
    """Prompt transforms, e.g. ``["middle-out"]``."""
    trace: dict[str, Any] | bool | None = None
    """OpenRouter ``trace`` object for broadcast destinations. A dict is sent as the default; with
    ``True`` (or a dict) the LangChain model also fills ``trace_id``, ``parent_span_id``,
    ``span_name`` and ``generation_name`` from the LangChain run tree."""
    openrouter_metadata: dict[str, str] | None = None
    """Default OpenRouter ``metadata`` pairs (named so to avoid the frameworks' own ``metadata``)."""

    def _body_params(self) -> dict[str, Any]:
        return {name: value for name in _BODY_FIELDS if (value := getattr(self, name)) is not None}

    def _default_attribution(self) -> Attribution:
        return Attribution(
            user=self.user,
            session_id=self.session_id,
            trace=self.trace if isinstance(self.trace, dict) else None,
            metadata=self.openrouter_metadata,
        )

    def _options_identifying(self) -> Mapping[str, Any]:
        """Non-secret parameters that identify this model (for tracing and caching)."""
        return self._body_params()
