"""The one place sdagd's version is written: pyproject.toml reads it from here at build time
(``dynamic = ["version"]``), ``sdagd.__version__`` and ``sdagd --version`` import it."""
__version__ = "0.1.0"
