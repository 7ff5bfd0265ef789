"""The README's layout section against the repository's tree: every path it names exists, and
every top-level entry and every source file of the code folders is named there, so that the
section cannot fall behind a new or removed file unnoticed."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Folders whose every file the layout names one by one; tests/ and results/ it describes whole.
LISTED_FOLDERS = ("csrc", "cuda", "sdagd", "benchmarks", "notebooks", "docs")


def layout_block():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text[text.index("## Layout"):].split("```")[1]


def tracked_files():
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the tree is read from git: this is not a git checkout")
    return [Path(line) for line in out.splitlines() if (ROOT / line).exists()]  # not deleted, uncommitted


def named(block, name):
    """Whether ``name`` appears in the block as a whole word (backend.c is not in backend.cu)."""
    return re.search(r"(?<![\w./-])" + re.escape(name) + r"(?![\w-]|\.\w)", block) is not None


def test_every_path_in_the_layout_exists():
    block = layout_block()
    top = {f.parts[0] for f in tracked_files()}
    paths = {p for p in re.findall(r"(?<![\w.])((?:\.?[\w-]+/)+[\w.-]*)", block)
             if p.split("/")[0] in top}  # a path, not prose such as "CPython/NumPy"
    assert paths, "no paths found in the README's layout section"
    build_outputs = {p for p in paths if p.endswith(".so")}  # made by the build, not in the tree
    missing = sorted(p for p in paths - build_outputs if not (ROOT / p).exists())
    assert not missing, f"the README's layout names paths that do not exist: {missing}"


def test_every_top_level_entry_and_source_file_is_in_the_layout():
    block = layout_block()
    files = tracked_files()
    top = {f.parts[0] + ("/" if len(f.parts) > 1 else "") for f in files}
    top -= {".gitignore"}
    absent = sorted(t for t in top if not named(block, t) and not named(block, t.rstrip("/")))
    assert not absent, f"top-level entries missing from the README's layout: {absent}"
    unlisted = sorted(str(f) for f in files if f.parts[0] in LISTED_FOLDERS and not named(block, str(f))
                      and not named(block, f.name))
    assert not unlisted, f"files missing from the README's layout: {unlisted}"
