"""The promises of the README and the manual (docs/, an MkDocs site): the README's first two
commands, every command of a ```console block with its output, every ```python example, the
error messages shown, the tables of bundled specs, and the ops reference generated from
the registry, checked here so the docs cannot rot. `--update-golden` rewrites the outputs
in the ```console blocks from a real run (review the diff); `python docs/gen_ops.py`
rewrites docs/ops.md. `mkdocs build --strict` (in .ci/run) checks the links."""

from __future__ import annotations

import glob
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archspec.cli import main
from reference import ROOT, installed_command

README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
BLOCK = re.compile(r"```console\n\$ (?P<cmd>[^\n]+)\n(?P<out>.*?)```", re.S)
SPEC_ROW = re.compile(r"\| `(specs/[^`]+\.yaml)` \| [^|]+ \| ([\d,]+) \| ([\d.]+) \| (\d+) \|$")


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


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
    assert "mkdocs build --strict" in ci  # and builds the manual


def test_the_readme_stays_short_and_links_into_the_manual():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert any(t.startswith("docs/") for t in targets)
    for target in targets:
        if "://" not in target:
            assert (ROOT / target).exists(), target


def test_the_install_command_runs_googlenet():
    # the console script the install made, as the README's command runs it
    result = subprocess.run([installed_command(), "build", "specs/googlenet.yaml"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "parameters  13,004,888" in result.stdout


def test_the_peer_comparison_claims_only_what_was_measured():
    """Measured on one ResNet-18 with five mistakes (issue 9): Ultralytics refuses an unknown
    module or a bad `from` index when it builds, and both peers give a YAML syntax error
    its line. The README once said they fail with a bare KeyError at run time."""
    text = (DOCS / "index.md").read_text()
    why = text[text.index("## Why"):]
    why = why[:why.find("\n## ", 1)] if "\n## " in why[1:] else why
    assert "KeyError" not in why and "at run time" not in why
    for fact in ("A YAML syntax error: both report it with its line", "Ultralytics refuses it when it builds the model",
                 "TorchArc names\n  the module key", "in both it surfaces only at the first forward",
                 "Their errors name no line of the spec", "Ultralytics ignores it silently",
                 "Ultralytics `eval`s `activation:`", "TorchArc pastes\n  `graph.input` into the code it generates"):
        assert fact in why, fact


def _blocks() -> list[tuple[Path, re.Match]]:
    return [(page, m) for page in PAGES for m in BLOCK.finditer(page.read_text())]


def test_the_tutorial_has_commands():
    commands = [m["cmd"] for page, m in _blocks() if page == DOCS / "tutorial.md"]
    assert any(c.startswith("archspec build docs/tutorial/densenet_cifar.yaml") for c in commands)
    assert any(c.startswith("archspec diff specs/densenet121.yaml docs/tutorial/densenet_cifar.yaml") for c in commands)
    assert any(c.startswith("archspec graph docs/tutorial/densenet_cifar.yaml") for c in commands)
    readme = [m["cmd"] for page, m in _blocks() if page == README]
    assert any(c.startswith("archspec validate") for c in readme) and any(c.startswith("archspec build") for c in readme)


@pytest.mark.parametrize("index", range(len(_blocks())),
                         ids=[f"{page.stem}-{m['cmd'].split()[1]}" for page, m in _blocks()])
def test_docs_command(index, capsys, monkeypatch, request, tmp_path):
    page, block = _blocks()[index]
    argv = shlex.split(block["cmd"])
    assert argv[0] == "archspec"
    target = None
    if "-o" in argv:  # write into a temporary folder, not over the committed file
        i = argv.index("-o") + 1
        target = argv[i]
        if target.endswith((".svg", ".png")) and shutil.which("dot") is None:
            pytest.skip("Graphviz's dot is not installed: the committed .svg cannot be rendered here")
        argv[i] = str(tmp_path / target.rsplit("/", 1)[-1])
    monkeypatch.chdir(ROOT)
    status = main(argv[1:])
    out, err = capsys.readouterr()
    assert status == 0, err
    if target is not None:
        out = out.replace(argv[argv.index("-o") + 1], target)
    written = tmp_path / target.rsplit("/", 1)[-1] if target is not None else None
    if request.config.getoption("--update-golden"):
        text = page.read_text()
        text = text.replace(block.group(0), f"```console\n$ {block['cmd']}\n{out}```")
        page.write_text(text)
        if written is not None and written.suffix == ".svg":
            shutil.copyfile(written, ROOT / target)  # the committed picture, redrawn
        return
    assert out == block["out"], _name(page)
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


def test_the_shown_error_messages_are_the_golden_ones():
    """A ```text block of `$ archspec build tests/bad_specs/NAME.yaml` shows the message
    that tests/bad_specs/NAME.expected holds (tests/test_bad_specs.py checks that one)."""
    shown = [(page, m) for page in PAGES
             for m in re.finditer(r"```text\n\$ archspec \w+ (tests/bad_specs/[^\s]+)\.yaml\n(.*?)```", page.read_text(), re.S)]
    assert {page for page, _ in shown} >= {README, DOCS / "cli.md"}
    for page, m in shown:
        assert m[2] == (ROOT / f"{m[1]}.expected").read_text(), _name(page)


def test_the_readme_tour_runs(capsys, monkeypatch):
    """The tour's spec is docs/examples/digits.yaml, and its Python prints what it says."""
    text = README.read_text()
    tour = text[text.index("## A 30-second tour"):text.index("\n## ", text.index("## A 30-second tour") + 1)]
    spec = re.search(r"```yaml\n(.*?)```", tour, re.S)[1]
    assert spec == "archspec: 1\n" + (DOCS / "examples" / "digits.yaml").read_text().split("archspec: 1\n", 1)[1]
    python = re.search(r"```python\n(.*?)```", tour, re.S)[1]
    monkeypatch.chdir(ROOT)
    exec(compile(python, "README.md", "exec"), {"__name__": "readme_tour"})
    assert capsys.readouterr().out.splitlines() == re.findall(r"# (torch\.Size\(.*\))", python)


def _spec_rows() -> dict[str, tuple[str, str, str]]:
    rows = {}
    for line in (DOCS / "specs.md").read_text().splitlines():
        m = SPEC_ROW.match(line)
        if m:
            rows[m[1]] = (m[2], m[3], m[4])
    return rows


def test_the_table_of_bundled_specs_is_true():
    """Every spec under specs/ has a row in docs/specs.md's table, with the parameters and
    GMACs a static load computes and its input size."""
    from archspec import load_spec
    from archspec._summary import totals

    rows = _spec_rows()
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").rglob("*.yaml"))
    assert sorted(rows) == specs
    for spec, (params, gmacs, size) in rows.items():
        graph = load_spec(ROOT / spec)
        t = totals(graph)
        assert (params, gmacs, size) == (f"{t.params:,}", f"{t.macs / 1e9:.3f}", str(graph.input_shape[1])), spec


def test_the_readme_zoo_is_the_bundled_specs():
    """The README's table of families covers every bundled spec once, with the count and the
    range of parameters of docs/specs.md's rows (which the test above checks)."""
    params = {spec: int(p.replace(",", "")) for spec, (p, _, _) in _spec_rows().items()}
    covered: list[str] = []
    for m in re.finditer(r"^\| [^|]+ \| `(specs/[^`]+)` \| (\d+) \| ([^|]+) \|$", README.read_text(), re.M):
        files = sorted(glob.glob(m[1], root_dir=ROOT))
        covered += files
        low, high = (f"{n / 1e6:.1f} M" for n in (min(params[f] for f in files), max(params[f] for f in files)))
        assert (int(m[2]), m[3]) == (len(files), low if low == high else f"{low} to {high}"), m[1]
    assert sorted(covered) == sorted(params)


def test_the_ops_page_is_generated_from_the_registry():
    """docs/ops.md is what docs/gen_ops.py makes of the op registry now: after a change to
    an op, run `python docs/gen_ops.py` and commit the page."""
    render = runpy.run_path(str(DOCS / "gen_ops.py"))["render"]
    assert (DOCS / "ops.md").read_text() == render(), "docs/ops.md is stale: run python docs/gen_ops.py"


def test_the_map_of_the_package_names_every_module():
    """docs/how-it-works.md's map names every module of the package (the op families'
    files aside: the ops reference covers them), so that a new module gets its line."""
    page = (DOCS / "how-it-works.md").read_text()
    families = {p.stem for p in (ROOT / "archspec" / "ops").glob("[a-z]*.py")}
    missing = []
    for path in sorted((ROOT / "archspec").rglob("*.py")):
        name = path.parent.name if path.stem == "__init__" else path.stem
        if name == "archspec" or (path.parent.name == "ops" and name in families):
            continue
        if not re.search(rf"`{re.escape(name)}/?[`(]|`{re.escape(name)}` ", page) and f"`{name}`" not in page:
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"docs/how-it-works.md's map of the package does not name: {missing}"


# Every ```python block of the README and the manual runs, each in a fresh interpreter (an
# example that registers an op or seeds torch leaves nothing behind), from a folder where
# the repository's docs/ and specs/ are at hand, with the files the example says the reader
# has: the tutorial's torchvision checkpoint is made with torchvision's key names and shapes
# (tests/fixtures/densenet121.json; the file torchvision publishes names BatchNorm and conv
# layers of a dense layer `norm.1`, `conv.1`, ... and has no BatchNorm counters), and the
# spec files the page shows as ```yaml blocks whose first line names them (`# star_net.yaml`). A block
# that prints and lists the printout as comments right after (`# loaded 603 of ...`) must
# print those lines (a comment ending in `...` is a prefix).
PY_BLOCK = re.compile(r"^(?P<indent> *)```python\n(?P<body>.*?)^(?P=indent)```$", re.S | re.M)
#: the blocks that cannot run in one process of the suite, by a line of theirs, and what runs them instead
NOT_RUN = {'dist.init_process_group("nccl")': "needs torchrun and several devices: tests/test_distributed.py runs "
                                              "the same steps (shard, train, a DCP checkpoint) on 2 gloo processes"}


YAML_FILE = re.compile(r"^```yaml\n# ([\w-]+\.yaml)\n(.*?)^```$", re.S | re.M)


def _python_blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for m in PY_BLOCK.finditer(text):
            body = "".join(line[len(m["indent"]):] + "\n" for line in m["body"].splitlines())
            found.append((_name(page), text.count("\n", 0, m.start()) + 1, body))
    return found


def test_the_examples_not_run_still_exist():
    bodies = [body for _, _, body in _python_blocks()]
    for line, why in NOT_RUN.items():
        assert sum(line in body for body in bodies) == 1, f"the example with {line!r} ({why}) is gone: drop it from NOT_RUN"


def _old_densenet_checkpoint(path: Path) -> None:
    import json

    import torch

    state = json.loads((ROOT / "tests" / "fixtures" / "densenet121.json").read_text())["state_dict"]
    old = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key): torch.zeros(shape)
           for key, shape in state if not key.endswith("num_batches_tracked")}
    torch.save(old, path)


@pytest.mark.parametrize("page,line,body", [b for b in _python_blocks() if not any(k in b[2] for k in NOT_RUN)],
                         ids=[f"{p}:{n}" for p, n, b in _python_blocks() if not any(k in b for k in NOT_RUN)])
def test_python_example_runs(page, line, body, tmp_path):
    for folder in ("docs", "specs"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    for m in YAML_FILE.finditer((ROOT / page).read_text()):
        (tmp_path / m[1]).write_text(m[2])
    for name in re.findall(r"""weights=["']([\w.-]+\.pth)["']""", body):
        assert name == "densenet121-a639ec97.pth", f"{page}:{line}: no checkpoint is made for {name}"
        _old_densenet_checkpoint(tmp_path / name)
    (tmp_path / "example.py").write_text(body)
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    assert done.returncode == 0, f"{page}:{line}: the example fails:\n{done.stderr[-3000:]}"
    lines = body.splitlines()
    for i, text in enumerate(lines):
        if text.startswith("print(") and i + 1 < len(lines) and lines[i + 1].startswith("# "):
            shown = []
            for comment in lines[i + 1:]:  # the comments right after the print, up to the first other line
                if not comment.startswith("# "):
                    break
                shown.append(comment[2:])
            printed = done.stdout.splitlines()
            assert len(printed) >= len(shown), f"{page}:{line}: printed {printed}, the page shows {shown}"
            for want, got in zip(shown, printed):
                assert got.startswith(want[:-3]) if want.endswith("...") else got == want, \
                    f"{page}:{line}: printed {got!r}, the page shows {want!r}"
