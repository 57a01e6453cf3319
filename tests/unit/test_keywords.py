"""Every public class refuses a misspelled keyword with ConfigurationError naming the closest one."""

from __future__ import annotations

import pytest

from openrouter_attribution import ConfigurationError, UsageLedger, UserBudget, UserIdPolicy, user_context
from openrouter_attribution.web import UserContextMiddleware

CASES = [
    (lambda: UserIdPolicy(prefx="app_"), "UserIdPolicy", "prefx", "prefix"),
    (lambda: UserIdPolicy(hash_kye="k" * 32), "UserIdPolicy", "hash_kye", "hash_key"),
    (lambda: UserBudget(max_cots=5), "UserBudget", "max_cots", "max_cost"),
    (lambda: UsageLedger(":memory:", durabilty="buffered"), "UsageLedger", "durabilty", "durability"),
    (lambda: user_context("u_1", sesion_id="s"), "user_context", "sesion_id", "session_id"),
    (lambda: UserContextMiddleware(lambda *a: None, identfy=lambda scope: None), "UserContextMiddleware",
     "identfy", "identify"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "owner", "typo", "meant"), CASES, ids=[case[2] for case in CASES])
def test_a_misspelled_keyword_names_the_closest_one(build, owner, typo, meant):
    with pytest.raises(ConfigurationError) as info:
        build()
    assert str(info.value).startswith(f"{owner} has no option {typo!r} (did you mean {meant!r}?)")
    assert isinstance(info.value.__cause__, TypeError)


def test_other_type_errors_are_left_alone():
    with pytest.raises(TypeError, match="positional"):
        UserIdPolicy("app_")  # type: ignore[misc]


def test_a_keyword_far_from_every_option_gets_no_guess():
    with pytest.raises(ConfigurationError) as info:
        UserBudget(zzz=1)
    assert str(info.value) == "UserBudget has no option 'zzz'. Check the spelling."


def test_good_keywords_still_build():
    assert UserBudget(max_cost=5).max_cost == 5
    with user_context("u_1", session_id="s_1") as attribution:
        assert (attribution.user, attribution.session_id) == ("u_1", "s_1")
