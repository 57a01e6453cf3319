"""Tool binding and structured output for ``ChatOpenRouter`` (LangChain glue only)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

from openrouter_attribution.errors import ConfigurationError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

__all__ = ["bind_tool_schemas", "structured_output_runnable"]

_CHOICE_ALIASES = {"any": "required", "required": "required", "auto": "auto", "none": "none"}


def _tool_choice(choice: str | bool | Mapping[str, Any] | None, tools: list[dict[str, Any]]) -> Any:
    if choice is None or isinstance(choice, Mapping):
        return dict(choice) if choice is not None else None
    if choice is True:
        if len(tools) != 1:
            raise ConfigurationError("tool_choice=True needs exactly one tool; name the tool to force instead.")
        return {"type": "function", "function": {"name": tools[0]["function"]["name"]}}
    if choice is False:
        return "none"
    alias = _CHOICE_ALIASES.get(choice)
    if alias is not None:
        return alias
    names = {tool["function"]["name"] for tool in tools}
    if choice not in names:
        raise ConfigurationError(
            f"tool_choice names {choice!r}, which is not among the bound tools ({', '.join(sorted(names))})."
        )
    return {"type": "function", "function": {"name": choice}}


def bind_tool_schemas(
    tools: Sequence[Mapping[str, Any] | type | Callable[..., Any] | BaseTool],
    tool_choice: str | bool | Mapping[str, Any] | None,
    parallel_tool_calls: bool | None,
    strict: bool | None,
) -> dict[str, Any]:
    """The request parameters that offer ``tools`` to the model."""
    formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
    params: dict[str, Any] = {"tools": formatted}
    choice = _tool_choice(tool_choice, formatted)
    if choice is not None:
        params["tool_choice"] = choice
    if parallel_tool_calls is not None:
        params["parallel_tool_calls"] = parallel_tool_calls
    return params


def _json_schema_format(schema: Any, strict: bool | None) -> dict[str, Any]:
    json_schema = convert_to_json_schema(schema)
    name = json_schema.get("title") or "output"
    spec: dict[str, Any] = {"name": name, "schema": json_schema}
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}


def _parser(schema: Any, method: str) -> Runnable[Any, Any]:
    is_model = isinstance(schema, type) and is_basemodel_subclass(schema)
    if method == "function_calling":
        assert schema is not None
        if is_model:
            return PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
        name = convert_to_openai_tool(schema)["function"]["name"]
        return JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
    if is_model:
        return PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
    return JsonOutputParser()


def structured_output_runnable(
    model: BaseChatModel,
    schema: Any,
    *,
    method: str,
    include_raw: bool,
    strict: bool | None,
    bind_kwargs: dict[str, Any],
) -> Runnable[Any, Any]:
    """Build ``model.with_structured_output(...)`` for the three methods."""
    if schema is None and method != "json_mode":
        raise ConfigurationError(f"with_structured_output(method={method!r}) needs a schema.")
    extras = dict(bind_kwargs)
    if schema is not None:  # what LangSmith shows as the requested output format
        extras["ls_structured_output_format"] = {"kwargs": {"method": method}, "schema": schema}
    if method == "function_calling":
        assert schema is not None
        tool_name = convert_to_openai_tool(schema)["function"]["name"]
        bound = model.bind_tools([schema], tool_choice=tool_name, strict=strict, **extras)
    elif method == "json_schema":
        assert schema is not None
        bound = model.bind(response_format=_json_schema_format(schema, strict), **extras)
    elif method == "json_mode":
        bound = model.bind(response_format={"type": "json_object"}, **extras)
    else:
        raise ConfigurationError(
            f"Unknown structured output method {method!r}; use 'function_calling', 'json_schema' or 'json_mode'."
        )
    parser = _parser(schema, method)
    if not include_raw:
        return bound | parser
    parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
    failed = RunnablePassthrough.assign(parsed=lambda _: None)
    with_fallback = parsed.with_fallbacks([failed], exception_key="parsing_error")
    return RunnableMap(raw=bound) | with_fallback
