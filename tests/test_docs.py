"""The examples in the public docstrings run and print what they say."""
import doctest

import pytest

import sdagd
import sdagd.mlp
import sdagd.optim


@pytest.mark.parametrize("module", [sdagd, sdagd.mlp, sdagd.optim], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module.__name__} has no examples to run"
    assert result.failed == 0
