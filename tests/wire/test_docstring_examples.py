"""The runnable examples in the public classes' docstrings run (against the local server) and print what they say."""

from __future__ import annotations

import doctest
import warnings

import pytest

from openrouter_attribution import OpenRouterUserKeys, langchain, llama_index
from openrouter_attribution.langchain import ChatOpenRouter
from openrouter_attribution.llama_index import OpenRouter


@pytest.mark.parametrize("cls", [ChatOpenRouter, OpenRouter, langchain.OpenRouterRerank, llama_index.OpenRouterRerank,
                                 OpenRouterUserKeys], ids=lambda cls: cls.__module__)  # fmt: skip
def test_model_class_examples_run(cls):
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(cls, cls.__name__, globs={})
    assert tests
    assert tests[0].examples
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an example must not make an unattributed call, nor warn at all
        for test in tests:
            runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
