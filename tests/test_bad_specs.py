"""The corpus of broken specs: every file in tests/bad_specs/ holds one mistake (its first
comment, `# mistake: ...`, says which, and "the spec still builds" where it is only a
warning) and its `.expected` file holds exactly what `archspec build` prints on stderr,
as a user sees it. Regenerate with `python -m pytest tests/test_bad_specs.py
--update-golden` and review the diff: would a user know what to fix?

A first line `# archspec-args: ...` adds command-line arguments (for --set mistakes).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from archspec.cli import main
from reference import ROOT

CORPUS = ROOT / "tests" / "bad_specs"
CASES = sorted(CORPUS.glob("*.yaml"))


def test_the_corpus_is_large():
    assert len(CASES) >= 40


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_message(path: Path, capsys, monkeypatch, request):
    monkeypatch.chdir(ROOT)  # messages name files relative to the working directory
    first = path.read_text().splitlines()[0] if path.read_text() else ""
    extra = shlex.split(first.split(":", 1)[1]) if first.startswith("# archspec-args:") else []
    status = main(["build", str(path.relative_to(ROOT)), *extra])
    out, err = capsys.readouterr()
    expected_file = path.with_suffix(".expected")
    mistake = next((line for line in path.read_text().splitlines()[:2] if line.startswith("# mistake:")), "")
    assert mistake, f"{path.name} says in a first comment '# mistake: ...' what is wrong with it"
    builds = "the spec still builds" in mistake  # the comment says it is a warning, not an error
    if request.config.getoption("--update-golden"):
        expected_file.write_text(err)
    assert status == (0 if builds else 2), err
    kinds = set(re.findall(r"^(?:\S+:\d+:\d+: )?(error|warning): ", err, re.M))
    assert (kinds == {"warning"}) if builds else ("error" in kinds), err
    assert err == expected_file.read_text()
    assert "Traceback" not in err
