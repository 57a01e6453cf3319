"""The main job in one run: a LangChain chain and an agent serving three end-users of two customers.

``make demo`` (or ``openrouter-attribution demo``) runs it against the embedded
local OpenRouter-compatible server: nothing leaves the machine and nothing is
spent, whatever the environment holds. ``--live`` runs it against OpenRouter
itself with ``OPENROUTER_API_KEY`` (it says so first: that spends credits).
For every request it prints the end-user that was sent, then the per-user usage
recorded in a ledger. Each run starts a fresh ledger (``--append`` keeps the
previous runs' records), so the totals it prints are those of the requests it
printed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["main"]

DESCRIPTION = """\
A LangChain chain and an agent serving three end-users of two customers (tenants), with every
request's user and cost printed and the per-user and per-customer totals read back from a usage ledger.

Runs against a local OpenRouter-compatible server on 127.0.0.1: nothing leaves the machine and
nothing is spent, even with OPENROUTER_API_KEY set. --live calls OpenRouter itself with that key
(a few requests to openai/gpt-4o-mini: well under a cent)."""

EXAMPLES = """\
examples:
  openrouter-attribution demo                      # local server, fresh ledger demo-usage.db
  openrouter-attribution demo --ledger /tmp/u.db --append
  OPENROUTER_API_KEY=sk-or-... openrouter-attribution demo --live"""

USERS = {"app_alice": "acme", "app_bob": "acme", "app_carol": "globex"}
"""The demo's end-users and the customer (tenant) each belongs to."""
LIVE_MODEL = "openai/gpt-4o-mini"
DEFAULT_LEDGER = "demo-usage.db"


def _printer() -> Any:
    from langchain_core.callbacks import BaseCallbackHandler

    class PrintAttribution(BaseCallbackHandler):
        """Prints, for every model request, the attribution OpenRouter received."""

        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            for generations in response.generations:
                for generation in generations:
                    meta = generation.message.response_metadata
                    sent = meta.get("attribution", {})
                    print(
                        f"  request {meta.get('generation_id')}: user={sent.get('user')} "
                        f"session={sent.get('session_id')} model={meta.get('model_name')} "
                        f"cost={dollars(meta.get('cost'))}"
                    )

    return PrintAttribution()


def dollars(cost: Decimal | float | None) -> str:
    """A cost in US dollars with 8 decimals (``$0.00000945``), the same way per request and in totals."""
    if cost is None:
        return "unknown"
    return f"${Decimal(str(cost)):.8f}"


@contextlib.contextmanager
def _endpoint(live: bool) -> Iterator[tuple[str, str, str]]:
    """Yields ``(base_url, api_key, model)``: OpenRouter itself, or the embedded local server."""
    if live:
        from openrouter_attribution import environment

        yield environment.base_url(), environment.api_key() or "", LIVE_MODEL
        return
    from openrouter_attribution.testing import FakeOpenRouter

    with FakeOpenRouter() as server:
        yield server.base_url, server.api_key, "openai/gpt-4o-mini"


def _run(base_url: str, api_key: str, model: str, ledger_path: str) -> None:
    from langchain_core.messages import HumanMessage
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import tool

    from openrouter_attribution import UsageLedger, user_context
    from openrouter_attribution.langchain import ChatOpenRouter

    try:
        from langchain.agents import create_agent
    except ImportError as err:  # pragma: no cover - the [dev] extra installs it
        raise SystemExit(
            'The demo\'s agent needs the `langchain` package: pip install "openrouter-attribution[agents]"'
        ) from err

    ledger = UsageLedger(ledger_path)
    # require_user=True: a call that found no end-user would fail here instead of going out unattributed.
    llm = ChatOpenRouter(
        model=model, base_url=base_url, api_key=api_key, ledger=ledger, app_title="attribution demo", require_user=True
    )
    printer = _printer()

    chain = ChatPromptTemplate.from_messages([("system", "Answer in one sentence."), ("human", "{question}")]) | llm

    @tool
    def order_status(order_id: int) -> str:
        """Look up the status of an order."""
        return f"order {order_id} shipped yesterday"

    agent = create_agent(llm, tools=[order_status], system_prompt="You are a support agent.")

    for user, tenant in USERS.items():
        print(f"\n== {user} of {tenant}: a chain, user passed in the run config, tenant in user_context()")
        with user_context(metadata={"tenant": tenant}):
            answer = chain.invoke(
                {"question": "What is OpenRouter?"},
                config={"configurable": {"user_id": user, "session_id": f"{user}-faq"}, "callbacks": [printer]},
            )
        print(f"  answer: {answer.content[:70]}")
        print(f"== {user} of {tenant}: an agent with a tool, user and tenant set once with user_context()")
        with user_context(user, session_id=f"{user}-support", metadata={"tenant": tenant}):
            result = agent.invoke(
                {"messages": [HumanMessage("Where is my order 1234? Use order_status.")]},
                config=RunnableConfig(callbacks=[printer]),
            )
        print(f"  answer: {result['messages'][-1].content[:70]}")

    print("\n== usage per end-user (from the ledger)")
    for row in ledger.totals(by="user"):
        print(f"  {row.key}: {row.requests} requests, {row.prompt_tokens}+{row.completion_tokens} tokens, "
              f"cost {dollars(row.cost)}")  # fmt: skip
    print("== usage per customer (metadata.tenant)")
    for row in ledger.totals(by="metadata.tenant"):
        print(f"  {row.key}: {row.requests} requests, cost {dollars(row.cost)}")
    ledger.close()
    print(f"\nLedger written to {ledger_path}. Next, totals from the shell and the dashboard in a browser:")
    for command in _report_commands(ledger_path):
        print(f"  {command}")


def _report_commands(ledger_path: str) -> list[str]:
    """Commands that work from here: ``make report`` in the checkout, the CLI of this interpreter."""
    commands = []
    makefile = Path("Makefile")
    if ledger_path == DEFAULT_LEDGER and makefile.is_file() and "\nreport:" in makefile.read_text():
        commands.append("make report")
    python = sys.executable
    with contextlib.suppress(ValueError):  # another drive on Windows
        relative = os.path.relpath(python)
        python = relative if not relative.startswith("..") else python
    cli = f"{shlex.quote(python)} -m openrouter_attribution.cli"
    commands.append(f"{cli} report --db {shlex.quote(ledger_path)} --by metadata.tenant")
    commands.append(f"{cli} dashboard --db {shlex.quote(ledger_path)}   # then open http://127.0.0.1:8050/")
    return commands


def _fresh_ledger(path: str, append: bool) -> str:
    """Say what happens to an existing ledger file, and remove it unless appending."""
    files = [Path(path + suffix) for suffix in ("", "-wal", "-shm")]
    if not files[0].exists():
        return f"Writing a new ledger: {path}"
    if append:
        return f"Appending to the existing ledger {path} (--append): its totals include earlier runs."
    for file in files:
        file.unlink(missing_ok=True)
    return f"Starting a fresh ledger: {path} (the previous run's records were removed; --append keeps them)."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="openrouter-attribution demo", description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "--live", action="store_true", help="call OpenRouter itself with OPENROUTER_API_KEY (spends credits)"
    )
    parser.add_argument("--ledger", default=DEFAULT_LEDGER, help="SQLite usage ledger to write (default: %(default)s)")
    parser.add_argument("--append", action="store_true", help="keep the ledger's earlier records (default: fresh)")
    args = parser.parse_args(argv)
    from openrouter_attribution import environment

    live = args.live
    if live and not environment.api_key():
        print("error: --live needs OPENROUTER_API_KEY (an OpenRouter API key) in the environment", file=sys.stderr)
        return 2
    with _endpoint(live) as (base_url, api_key, model):
        if live:
            print(f"--live: calling OpenRouter at {base_url} with OPENROUTER_API_KEY; this spends credits.")
        else:
            print(f"Model {model} on the local OpenRouter-compatible server at {base_url} (nothing is spent; "
                  "--live calls OpenRouter).")  # fmt: skip
        print(_fresh_ledger(args.ledger, args.append))
        _run(base_url, api_key, model, args.ledger)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
