"""The fields every LlamaIndex class of this library adds to the common options (glue only)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from openrouter_attribution.options import _key_from_env

__all__ = ["LlamaIndexFields"]


class LlamaIndexFields(BaseModel):
    """Secrets and objects kept out of LlamaIndex's ``to_dict`` / ``to_json``, the ``instrument_tags`` keys,
    and LlamaIndex's ``api_base`` spelling of ``base_url``.

    Listed before the options class in a LlamaIndex class's bases, so these definitions win over
    :class:`~openrouter_attribution.options.ClientOptions`'.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    api_key: SecretStr | None = Field(default_factory=_key_from_env, repr=False, exclude=True)
    """OpenRouter API key; defaults to ``OPENROUTER_API_KEY``. Never serialized (``to_dict`` / ``to_json``)."""
    user_policy: Any = Field(default=None, exclude=True)
    """A :class:`~openrouter_attribution.UserIdPolicy` applied to every resolved user id (not serialized)."""
    ledger: Any = Field(default=None, exclude=True)
    """A :class:`~openrouter_attribution.UsageLedger` recording usage and cost of every request (not serialized)."""
    user_id_tag: str = "user_id"
    """``instrument_tags`` key that holds the end-user id."""
    session_id_tag: str = "session_id"
    """``instrument_tags`` key that holds the session id."""

    @property
    def api_base(self) -> str:
        """LlamaIndex's name for :attr:`base_url`."""
        return str(getattr(self, "base_url"))  # noqa: B009 - the field is the options class's
