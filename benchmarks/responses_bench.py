"""Responses API benchmark: client CPU per non-streamed ``POST /responses`` call, ours against the openai SDK.

Part of ``run.py`` (``make bench`` and the smoke run of ``make test``), against ``server.py``'s
``/responses``. The reference is the SDK's own ``client.responses.create(...)`` (it builds a typed
``Response`` from the answer); ours is ``ChatOpenRouter(use_responses_api=True).invoke(...)`` returning an
``AIMessage`` with usage and cost. Both send the same request: ``input`` ``"hi"``, ``store: false``, and the
end-user as ``user`` and ``safety_identifier`` (ours takes it from ``user_context``, so attribution and the
identity policy are part of its cost). Each client checks the text it gets back.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from clients import API_KEY, EXPECTED, MODEL, PROMPT

USER = "app_42"
REFERENCE = "openai"
OURS_LC = "ours-lc"
TARGET = 1.0
"""Our LangChain model's client CPU per Responses call must be at most this times the SDK's."""
LABELS = {REFERENCE: "openai SDK responses.create (reference)", OURS_LC: "ours: ChatOpenRouter(use_responses_api=True)"}


def _check(text: Any, client: str) -> None:
    if text != EXPECTED:
        raise RuntimeError(f"{client} returned {text!r}, expected {EXPECTED!r}")


def _sdk(base_url: str) -> Callable[[], None]:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=API_KEY)

    def call() -> None:
        answer = client.responses.create(model=MODEL, input=PROMPT, store=False, user=USER, safety_identifier=USER)
        _check(answer.output_text, REFERENCE)

    return call


def _ours(base_url: str) -> Callable[[], None]:
    from openrouter_attribution import user_context
    from openrouter_attribution.langchain import ChatOpenRouter

    model = ChatOpenRouter(model=MODEL, base_url=base_url, api_key=API_KEY, use_responses_api=True)
    context = user_context(USER)

    def call() -> None:
        with context:
            _check(model.invoke(PROMPT).content, OURS_LC)

    return call


def _cpu_us(call: Callable[[], None], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - start) / calls * 1e6


def measure(base_url: str, *, smoke: bool, rounds: int, target_s: float) -> dict[str, Any]:
    """Median client CPU µs per call for both clients (round-robin, as for the chat clients).

    Raises:
        RuntimeError: a client cannot be measured (a broken benchmark fails the run).
    """
    calls: dict[str, tuple[Callable[[], None], int]] = {}
    for name, factory in ((REFERENCE, _sdk), (OURS_LC, _ours)):
        try:
            call = factory(base_url)
            warm = _cpu_us(call, 2 if smoke else 20)
        except Exception as err:
            raise RuntimeError(f"the Responses benchmark cannot measure {name}: {err}") from err
        calls[name] = (call, max(3, min(3000, int(target_s / (warm / 1e6)))))
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            call, count = calls[name]
            samples[name].append(_cpu_us(call, count))
    clients = {name: {"label": LABELS[name], "cpu_us": statistics.median(values), "samples": values}
               for name, values in samples.items()}  # fmt: skip
    return {"clients": clients}


def targets(responses: dict[str, Any]) -> list[dict[str, Any]]:
    """The Responses target: our LangChain model's client CPU per call vs the SDK's ``responses.create``."""
    clients = responses.get("clients", {})
    value, reference = clients.get(OURS_LC, {}).get("cpu_us"), clients.get(REFERENCE, {}).get("cpu_us")
    ratio = value / reference if value and reference else None
    return [{"target": f"LangChain Responses API CPU per call <= {TARGET:.1f}x SDK responses.create",
             "measured": f"{ratio:.2f}x" if ratio else "n/a", "met": ratio <= TARGET if ratio else None}]  # fmt: skip


def markdown(responses: dict[str, Any]) -> list[str]:
    """The Responses section of the report."""
    clients = responses.get("clients", {})
    reference = clients.get(REFERENCE, {}).get("cpu_us")
    lines = ["", "## Responses API: client CPU per call (non-streamed)", "", "| client | CPU µs/call |", "|---|---|"]
    for data in clients.values():
        value = data["cpu_us"]
        lines.append(f"| {data['label']} | {value:,.0f}" + (f" ({value / reference:.2f}x)" if reference else "") + " |")
    return lines


def main() -> None:
    """``python benchmarks/responses_bench.py [rounds]``: this row alone, against its own server process."""
    import sys

    from server import ServerProcess

    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with ServerProcess() as server:
        result = measure(server.base_url(), smoke=False, rounds=rounds, target_s=0.15)
    print("\n".join(markdown(result)))
    for target in targets(result):
        print(f"\n{target['target']}: {target['measured']} ({'met' if target['met'] else 'NOT met'})")


if __name__ == "__main__":
    main()
