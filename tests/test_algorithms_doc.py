"""docs/algorithms.md and the citations of it: every section the code, tests, notebooks and
documents cite ("docs/algorithms.md section 5.2", "... §§3-5") exists in the document, so that
a renumbered section cannot leave citations pointing at the wrong formula."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "algorithms.md"
NUMBER = r"\d+(?:\.\d+)?"
# "docs/algorithms.md" (possibly quoted), then "section(s)", "§" or "§§" and a number,
# a range ("4-5", "3–5") or a pair ("3 and 4", "3, 4")
CITATION = re.compile(r"docs/algorithms\.md`{0,2}\)?,?\s*\(?(?:sections?\s+|§§?\s*)?"
                      rf"({NUMBER})(?:\s*(?:-|–|,|and)\s*({NUMBER}))?")


def sections():
    text = DOC.read_text(encoding="utf-8")
    return set(re.findall(r"^##+ (\d+(?:\.\d+)?)\.? ", text, flags=re.M))


def citing_files():
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the files are listed by git: this is not a git checkout")
    suffixes = {".py", ".c", ".h", ".cu", ".md", ".ipynb", ".sh", ".toml"}
    return [ROOT / p for p in out.splitlines() if Path(p).suffix in suffixes and (ROOT / p).exists()]


def test_the_document_has_its_sections():
    have = sections()
    assert {"1", "2", "3", "4", "5", "5.1", "5.2", "5.3", "5.4", "5.5", "6", "7", "8", "9"} <= have, have


def test_every_cited_section_exists():
    have = sections()
    cited, bad = 0, []
    for path in citing_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in CITATION.finditer(text):
            for number in filter(None, match.groups()):
                cited += 1
                if number not in have:
                    line = text.count("\n", 0, match.start()) + 1
                    bad.append(f"{path.relative_to(ROOT)}:{line}: section {number}")
    assert cited >= 35, f"only {cited} citations found: has the citation format changed?"
    assert not bad, f"citations of sections docs/algorithms.md does not have: {bad}"
