"""Shared pytest fixtures for the sdagd tests."""

import os
import tempfile
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


# --------------------------------------------------------------------------
# Folders that cannot be written
# --------------------------------------------------------------------------

def _can_create_in(folder):
    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder in which this process cannot create files: a chmod 0o555 one, or where that
    does not stop it (root), /sys, which refuses new files; skipped if neither works."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        usable = [c for c in (folder, Path("/sys")) if c.is_dir() and not _can_create_in(c)]
        if not usable:
            pytest.skip("no read-only folder here (root, and /sys accepts files)")
        yield usable[0]
    finally:
        folder.chmod(0o755)
