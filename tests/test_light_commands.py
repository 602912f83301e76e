"""The commands that only read specs stay light: `validate`, `list`, `diff` and `graph`
never import torch, and the fast YAML parser (libyaml) reads exactly what the
pure-Python one reads, with the same positions. How fast they are is measured by
bench/, never here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archspec._load import yaml_text as _load
from reference import SPECS

ROOT = Path(__file__).resolve().parent.parent


def _run_cli_without_torch(args: list[str], cwd: Path) -> str:
    """Run ``archspec.cli.main(args)`` in a fresh interpreter (this checkout's archspec) and
    check that it succeeded and left torch unimported; returns its stdout."""
    code = ("import sys\nimport archspec.cli\n"
            f"status = archspec.cli.main({args!r})\n"
            "assert archspec.cli.__file__.startswith(" + repr(str(ROOT)) + "), archspec.cli.__file__\n"
            "print('status', status, 'torch imported:', 'torch' in sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "status 0 torch imported: False", done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("command", ["validate", "list", "diff", "graph"])
def test_reading_commands_never_import_torch(command, tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    for name in ("alexnet.yaml", "densenet121.yaml", "densenet264.yaml"):  # 264 extends 121
        shutil.copy(SPECS / name, folder / name)
    args = {
        "validate": ["validate", str(folder / "densenet264.yaml")],
        "list": ["list", str(folder)],
        "diff": ["diff", str(folder / "densenet121.yaml"), str(folder / "densenet264.yaml")],
        "graph": ["graph", str(folder / "densenet121.yaml"), "-o", str(tmp_path / "net.dot")],
    }[command]
    out = _run_cli_without_torch(args, tmp_path)
    if command == "validate":
        assert "densenet264.yaml: ok (densenet264, 33,337,704 parameters" in out
    if command == "graph":
        assert (tmp_path / "net.dot").read_text().startswith("digraph")


def _loaded(text: str, libyaml: bool, monkeypatch) -> tuple:
    with monkeypatch.context() as m:
        if not libyaml:
            m.setattr(_load, "_CParser", None)  # as where PyYAML was built without libyaml
        try:
            doc = _load.load_text(text, "spec.yaml")
        except Exception as e:  # noqa: BLE001 - the error itself is compared
            return ("error", type(e).__name__, str(e))
    return ("ok", repr(doc.data), sorted(doc.locs._values.items(), key=repr), sorted(doc.locs._keys.items(), key=repr))


TRICKY = [
    "archspec: 1\ngraph:\n  c: {op: conv2d, out: 16, kernel: , padding: 1}\n",  # an empty value in a flow mapping
    "archspec: 1\ngraph:\n  c:\n    op: conv2d\n    kernel:\n",  # an empty value in a block mapping
    "archspec: 1\nname: bro\tken\n",  # a tab libyaml would take
    "archspec: 1\nname: a\ufeffb\n",  # a byte order mark inside the text
    "archspec: 1\n? graph\n: {}\n",  # an explicit key
    "archspec: 1\ngraph: {a: [1, 2}\n",  # a syntax error
    "archspec: 1\nname: x\nname: y\n",  # a duplicate key
    "base: &b {op: relu}\ngraph:\n  r: *b\n  s: {<<: *b, inplace: false}\n",  # anchors, aliases and merges
    "name: 'quoted'\ndescription: \"doubled \\u00e9\"\ntext: |\n  literal\n  block\nfolded: >\n  folded\n  block\n",
    "archspec: 1\r\nname: crlf\r\ninput: [3, 32, 32]\r\n",
    "name: \U0001F600 ok\ninput: [1, 2]  # \u00e9 comment\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_libyaml_reads_what_pure_python_reads(text, monkeypatch):
    assert _loaded(text, True, monkeypatch) == _loaded(text, False, monkeypatch)


def test_libyaml_reads_every_bundled_spec_as_pure_python_does(monkeypatch):
    for path in sorted(SPECS.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert _loaded(text, True, monkeypatch) == _loaded(text, False, monkeypatch), path
