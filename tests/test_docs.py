"""The README's promises: its first two commands, and the tutorial's commands with their
output, run here so the docs cannot rot. `--update-golden` rewrites the outputs in the
README's ```console blocks from a real run (review the diff)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from archspec.cli import main
from reference import ROOT, installed_command

README = ROOT / "README.md"
BLOCK = re.compile(r"```console\n\$ (?P<cmd>[^\n]+)\n(?P<out>.*?)```", re.S)


def test_first_lines_are_the_two_commands():
    lines = README.read_text().splitlines()
    assert lines[0] == "# archspec"
    assert lines[2] == "```bash"
    install, test = lines[3], lines[4]
    assert install == "pip install torch==2.13.0 && pip install -e . && archspec build specs/googlenet.yaml"
    assert test.startswith("pip install torch==2.13.0 && pip install -e \".[test") and test.endswith("python -m pytest -q")
    assert lines[5] == "```"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "README.md" in ci  # CI runs the README's own test command


def test_the_install_command_runs_googlenet():
    # the console script the install made, as the README's command runs it
    result = subprocess.run([installed_command(), "build", "specs/googlenet.yaml"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "parameters  13,004,888" in result.stdout


def test_the_peer_comparison_claims_only_what_was_measured():
    """Measured on one ResNet-18 with five mistakes (issue 9): Ultralytics refuses an unknown
    module or a bad `from` index when it builds, and both peers give a YAML syntax error
    its line. The README once said they fail with a bare KeyError at run time."""
    text = README.read_text()
    why = text[text.index("## Why"):text.index("## The spec language")]
    assert "KeyError" not in why and "at run time" not in why
    for fact in ("A YAML syntax error: both report it with its line", "Ultralytics refuses it when it builds the model",
                 "TorchArc names\n  the module key", "in both it surfaces only at the first forward",
                 "Their errors name no line of the spec", "Ultralytics ignores it silently",
                 "Ultralytics `eval`s `activation:`", "TorchArc pastes\n  `graph.input` into the code it generates"):
        assert fact in why, fact


def _blocks():
    return list(BLOCK.finditer(README.read_text()))


def test_the_tutorial_has_commands():
    commands = [m["cmd"] for m in _blocks()]
    assert any(c.startswith("archspec build docs/tutorial/densenet_cifar.yaml") for c in commands)
    assert any(c.startswith("archspec diff specs/densenet121.yaml docs/tutorial/densenet_cifar.yaml") for c in commands)
    assert any(c.startswith("archspec graph docs/tutorial/densenet_cifar.yaml") for c in commands)


@pytest.mark.parametrize("index", range(len(_blocks())), ids=[m["cmd"].split()[1] for m in _blocks()])
def test_tutorial_command(index, capsys, monkeypatch, request, tmp_path):
    block = _blocks()[index]
    argv = shlex.split(block["cmd"])
    assert argv[0] == "archspec"
    target = None
    if "-o" in argv:  # write into a temporary folder, not over the committed file
        i = argv.index("-o") + 1
        target = argv[i]
        if target.endswith((".svg", ".png")) and shutil.which("dot") is None:
            pytest.skip("Graphviz's dot is not installed: the .svg in the README cannot be rendered here")
        argv[i] = str(tmp_path / target.rsplit("/", 1)[-1])
    monkeypatch.chdir(ROOT)
    status = main(argv[1:])
    out, err = capsys.readouterr()
    assert status == 0, err
    if target is not None:
        out = out.replace(argv[argv.index("-o") + 1], target)
    written = tmp_path / target.rsplit("/", 1)[-1] if target is not None else None
    if request.config.getoption("--update-golden"):
        text = README.read_text()
        text = text.replace(block.group(0), f"```console\n$ {block['cmd']}\n{out}```")
        README.write_text(text)
        if written is not None and written.suffix == ".svg":
            shutil.copyfile(written, ROOT / target)  # the committed picture, redrawn
        return
    assert out == block["out"]
    if written is not None and written.suffix == ".svg":
        # the committed picture shows what the spec draws now: the same labels, in the same order
        # (coordinates are left out: they differ between Graphviz versions)
        assert svg_labels(written) == svg_labels(ROOT / target)


def svg_labels(path) -> list[tuple[str, str]]:
    """Every <title> and <text> of an SVG file, in document order."""
    from xml.etree import ElementTree

    ns = "{http://www.w3.org/2000/svg}"
    return [(el.tag[len(ns):], (el.text or "").strip()) for el in ElementTree.parse(path).iter()
            if el.tag in (ns + "title", ns + "text")]


def test_the_table_of_bundled_specs_is_true():
    """Every spec under specs/ has a row in the README's table, with the parameters and
    GMACs a static load computes and its input size."""
    from archspec import load_spec
    from archspec._summary import totals

    rows = {}
    for line in README.read_text().splitlines():
        m = re.match(r"\| `(specs/[^`]+\.yaml)` \| [^|]+ \| ([\d,]+) \| ([\d.]+) \| (\d+) \|$", line)
        if m:
            rows[m[1]] = (m[2], m[3], m[4])
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").rglob("*.yaml"))
    assert sorted(rows) == specs
    for spec, (params, gmacs, size) in rows.items():
        graph = load_spec(ROOT / spec)
        t = totals(graph)
        assert (params, gmacs, size) == (f"{t.params:,}", f"{t.macs / 1e9:.3f}", str(graph.input_shape[1])), spec
