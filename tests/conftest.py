"""Shared pytest fixtures for the sdagd tests."""

import os
from pathlib import Path

import pytest


# --------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def mnist_dir():
    """Directory holding the real MNIST IDX files, from ``SDAGD_DATA``.

    Tests using it are skipped when ``SDAGD_DATA`` is unset, except that
    ``SDAGD_REQUIRE_DATA=1`` makes them fail instead: CI sets both, so a
    lost data path cannot silently turn the real-data tests into skips.
    """
    value = os.environ.get("SDAGD_DATA")
    if not value:
        if os.environ.get("SDAGD_REQUIRE_DATA") == "1":
            pytest.fail("SDAGD_REQUIRE_DATA=1 but SDAGD_DATA is not set")
        pytest.skip("set SDAGD_DATA=/dir/with/mnist to run real-data tests")
    return Path(value)
