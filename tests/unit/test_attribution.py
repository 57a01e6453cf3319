"""Resolution order, nesting and isolation of user_context()."""

from __future__ import annotations

import asyncio
import threading

import pytest

from openrouter_attribution import Attribution, current_attribution, user_context
from openrouter_attribution.attribution import LAYERS, resolve

A = Attribution


@pytest.mark.parametrize(
    ("layers", "context", "expected_user", "expected_source"),
    [
        ({}, None, None, None),
        ({"default": A(user="d")}, None, "d", "default"),
        ({"default": A(user="d")}, "c", "c", "context"),
        ({"ambient": A(user="a"), "default": A(user="d")}, "c", "c", "context"),
        ({"ambient": A(user="a"), "default": A(user="d")}, None, "a", "ambient"),
        ({"invocation": A(user="i"), "ambient": A(user="a")}, "c", "i", "invocation"),
        ({"explicit": A(user="e"), "invocation": A(user="i")}, "c", "e", "explicit"),
        ({"fallback": A(user="f")}, None, "f", "fallback"),
        ({"runtime": A(user="r"), "default": A(user="d")}, "c", "r", "runtime"),
        ({"invocation": A(user="i"), "runtime": A(user="r")}, None, "i", "invocation"),
        ({"authenticated": A(user="p"), "invocation": A(user="i")}, "c", "p", "authenticated"),
        ({"explicit": A(user="e"), "authenticated": A(user="p")}, None, "e", "explicit"),
    ],
)
def test_user_resolution_order(layers, context, expected_user, expected_source):
    with user_context(context):
        resolved = resolve(**layers)
    assert resolved.attribution.user == expected_user
    assert resolved.user_source == expected_source


def test_fields_resolve_independently():
    with user_context("ctx-user", metadata={"plan": "pro"}):
        resolved = resolve(
            explicit=A(session_id="explicit-session"),
            default=A(user="default-user", trace={"trace_id": "t"}),
            fallback=A(session_id="thread-1"),
        )
    assert resolved.attribution == A(
        user="ctx-user", session_id="explicit-session", trace={"trace_id": "t"}, metadata={"plan": "pro"}
    )


def test_thread_id_fallback_only_when_nothing_else_sets_session():
    assert resolve(fallback=A(session_id="thread-1")).attribution.session_id == "thread-1"
    assert resolve(default=A(session_id="s"), fallback=A(session_id="thread-1")).attribution.session_id == "s"


def test_layers_are_documented_in_priority_order():
    assert LAYERS == ("explicit", "authenticated", "invocation", "runtime", "context", "ambient", "default", "fallback")


def test_nesting_inner_wins_and_outer_is_restored():
    assert current_attribution().is_empty()
    with user_context("outer", session_id="s1"):
        with user_context("inner"):
            assert current_attribution() == A(user="inner", session_id="s1")
        assert current_attribution() == A(user="outer", session_id="s1")
    assert current_attribution().is_empty()


def test_restored_after_exception():
    with pytest.raises(RuntimeError), user_context("u1"):
        raise RuntimeError("boom")
    assert current_attribution().user is None


async def test_async_context_manager_and_task_isolation():
    seen: dict[str, str | None] = {}

    async def serve(user: str) -> None:
        async with user_context(user):
            await asyncio.sleep(0.01)
            seen[user] = current_attribution().user

    await asyncio.gather(*(serve(f"u{i}") for i in range(20)))
    assert seen == {f"u{i}": f"u{i}" for i in range(20)}
    assert current_attribution().user is None


def test_threads_are_isolated():
    barrier = threading.Barrier(8)
    seen: dict[int, str | None] = {}

    def serve(i: int) -> None:
        with user_context(f"u{i}"):
            barrier.wait()
            seen[i] = current_attribution().user

    threads = [threading.Thread(target=serve, args=(i,)) for i in range(8)]
    with user_context("main-thread"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert seen == {i: f"u{i}" for i in range(8)}


def test_decorator_sync_and_async():
    @user_context("deco")
    def sync_fn() -> str | None:
        return current_attribution().user

    @user_context("adeco")
    async def async_fn() -> str | None:
        return current_attribution().user

    assert sync_fn() == "deco"
    assert asyncio.run(async_fn()) == "adeco"
    assert current_attribution().user is None


def test_repr_does_not_show_the_user():
    assert "secret-user" not in repr(user_context("secret-user"))


# -- propagate: work handed to plain threads -------------------------------------------------------


def test_plain_thread_pool_loses_the_user_and_propagate_keeps_it():
    from concurrent.futures import ThreadPoolExecutor

    from openrouter_attribution import propagate

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: None).result()  # the worker thread exists before the block below
        with user_context("app_42", session_id="s"):
            plain = pool.submit(current_attribution).result()
            carried = pool.submit(propagate(current_attribution)).result()
    assert plain.user is None
    assert carried == A(user="app_42", session_id="s")


def test_propagate_captures_at_wrap_time_and_runs_concurrently_in_copies():
    from openrouter_attribution import propagate

    with user_context("app_wrap"):
        fn = propagate(lambda i: (i, current_attribution().user))
    barrier = threading.Barrier(4)

    def in_thread(i: int, out: list) -> None:
        with user_context(f"thread-{i}"):
            barrier.wait()
            out.append(fn(i))

    out: list = []
    threads = [threading.Thread(target=in_thread, args=(i, out)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(out) == [(i, "app_wrap") for i in range(4)]


def test_what_a_propagated_function_sets_stays_its_own():
    from openrouter_attribution import propagate

    def enter_and_leave_open() -> str | None:
        user_context("inner").__enter__()
        return current_attribution().user

    with user_context("outer"):
        fn = propagate(enter_and_leave_open)
        assert fn() == "inner"
        assert fn() == "inner"
        assert current_attribution().user == "outer"


def test_propagate_keeps_the_name_and_refuses_a_non_callable():
    from openrouter_attribution import propagate

    def summarise() -> None:
        """Docs."""

    assert propagate(summarise).__name__ == "summarise"
    assert propagate(summarise).__doc__ == "Docs."
    with pytest.raises(TypeError, match="needs a callable, got str"):
        propagate("not a function")  # type: ignore[arg-type]
