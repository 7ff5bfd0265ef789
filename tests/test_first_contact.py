"""What a new user meets first: the README's two commands, and importing sdagd from a source
tree that was not built.

`python -m sdagd` from the root of a clone imports the `sdagd/` folder there, which holds no
compiled extension unless the tree was built in place; that import must say what to do, not
fail with "circular import". And CI (.ci/run) must run the README's commands verbatim, from
the clone's root, as a user does.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    """The shell commands of the README's "The two commands" section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)
            for line in block.splitlines() if line.strip()]


def test_the_readme_gives_two_commands_and_ci_runs_them_verbatim():
    if not (ROOT / ".ci" / "run").exists() or not (ROOT / "README.md").exists():
        pytest.skip("not a source checkout")
    commands = readme_commands()
    assert len(commands) == 2, commands
    install_and_run, test = commands
    assert install_and_run.startswith("pip install ") and " && sdagd reproduce" in install_and_run
    assert "python -m sdagd" not in install_and_run  # that would import the unbuilt source folder
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in commands:
        assert re.search(rf"^\s*{re.escape(command)}\s*$", ci, re.M), f".ci/run does not run {command!r} verbatim"


def test_importing_an_unbuilt_source_tree_says_what_to_do(tmp_path):
    """A copy of the package's Python files beside a setup.py, without the extension."""
    tree = tmp_path / "clone"
    (tree / "sdagd").mkdir(parents=True)
    for source in (ROOT / "sdagd").glob("*.py"):
        shutil.copy(source, tree / "sdagd" / source.name)
    (tree / "setup.py").write_text("# a source checkout\n")
    # An editable install of sdagd (a developer's) maps sdagd's modules wherever they are
    # imported from: set its finder aside, as a user's normal install has none.
    plain = "import sys; sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
    for code in ("import sdagd", "import runpy; runpy.run_module('sdagd', run_name='__main__')"):
        run = subprocess.run([sys.executable, "-c", plain + code], cwd=tree, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode != 0
        message = run.stderr
        assert "source tree" in message and "pip install -e ." in message and "`sdagd` command" in message, message
        assert "circular import" not in message
