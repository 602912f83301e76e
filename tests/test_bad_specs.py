"""The corpus of broken specs: every file in tests/bad_specs/ holds one mistake (its first
comment says which) and its `.expected` file holds exactly what `archspec build` prints
on stderr, as a user sees it. Regenerate with `python -m pytest tests/test_bad_specs.py
--update-golden` and review the diff: would a user know what to fix?

A first line `# archspec-args: ...` adds command-line arguments (for --set mistakes).
"""

from __future__ import annotations

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
    warning_only = path.stem == "ref-unused-node"
    if request.config.getoption("--update-golden"):
        expected_file.write_text(err)
    assert status == (0 if warning_only else 2), err
    assert err == expected_file.read_text()
    assert "Traceback" not in err
