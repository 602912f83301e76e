"""Models by name, and from a wheel.

The first tests read the bundled specs of this checkout: how a spec argument is told to be
a bundled name or a file path (archspec/_bundled.py), ``extends: archspec:NAME``, and the
errors of each. They read files and parse a few specs; none builds a network.

The last one builds the wheel from a copy of the source (the setuptools backend, as
``pip wheel`` or ``python -m build`` would call it, without network), installs it with pip
into a fresh virtual environment that does not see this checkout, and runs archspec from
a temporary folder: ``archspec list``, ``archspec validate``, ``archspec build`` and the
Python API, each by name. The venv reaches torch, pydantic, PyYAML and jsonschema through
a ``.pth`` file that lists this interpreter's site-packages folders: Python adds those to
``sys.path`` after the venv's own, without running their ``.pth`` files, so an editable
install of the checkout there never loads (``venv --system-site-packages`` would not do:
from inside a venv it exposes the base interpreter's packages, not this one's).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from archspec import SpecReferenceError, SpecShapeError, SpecSchemaError, load_spec
from archspec._bundled import find, names, spec_path
from archspec._diagnostics import render
from archspec._load import load_document
from archspec.cli import main
from reference import ROOT, SPECS


def run(capsys, *args):
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


# -- names and paths ----------------------------------------------------------------------------


def test_bundled_names_are_stems_or_paths_inside_the_folder():
    assert spec_path("densenet121") == SPECS / "densenet121.yaml"
    assert spec_path("resnet50") == spec_path("resnet/resnet50") == spec_path("archspec:resnet50") \
        == SPECS / "resnet" / "resnet50.yaml"
    assert spec_path("archspec:resnet/resnet50") == SPECS / "resnet" / "resnet50.yaml"
    assert spec_path("specs/googlenet.yaml") == Path("specs/googlenet.yaml")  # a path stays a path, as given
    assert spec_path(Path("googlenet")) == Path("googlenet")  # a Path is always a file


def test_every_bundled_stem_names_one_spec():
    """A stem shared by two families would make the short name ambiguous (the qualified
    one, resnet/resnet50, still works: see the next test); keep the bundled stems unique."""
    known = names()
    assert len(known) == len(list(SPECS.rglob("*.yaml"))) >= 70
    stems = [p.stem for p in known.values()]
    assert sorted(s for s in set(stems) if stems.count(s) > 1) == []
    assert list(known)[:2] == ["alexnet-paper", "alexnet"] and "resnet/resnet50" in known  # top level first


def test_a_stem_two_families_share_is_ambiguous(tmp_path):
    for family in ("a", "b"):
        (tmp_path / family).mkdir()
        (tmp_path / family / "net.yaml").write_text("archspec: 1\n")
    assert find("a/net", where=tmp_path) == tmp_path / "a" / "net.yaml"
    with pytest.raises(SpecReferenceError) as e:
        find("net", where=tmp_path)
    assert e.value.message == "'net' is ambiguous: several bundled specs are named 'net'"
    assert e.value.hint == "write 'a/net' or 'b/net'"


def test_an_existing_file_wins_over_a_bundled_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "googlenet").write_text("archspec: 1\nname: mine\ninput: [3, 8, 8]\ngraph:\n  c: {op: conv2d, out: 2, kernel: 3}\n")
    assert load_spec("googlenet").name == "mine"
    assert spec_path("archspec:googlenet") == SPECS / "googlenet.yaml"  # the prefix always means the bundled one
    (tmp_path / "densenet121").mkdir()  # something that is not a file is refused, as before
    with pytest.raises(SpecReferenceError) as e:
        load_spec("densenet121")
    assert e.value.message == "'densenet121' is a folder, not a spec file"


def test_an_unknown_name_lists_the_nearest(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, "validate", "densnet121")
    assert status == 2 and out == "densnet121: invalid (1 error)\n"
    assert err == ("error: no bundled spec is named 'densnet121' (expected the name of a bundled spec, such as "
                   "'densenet121' or 'resnet/resnet50')\n"
                   "  hint: did you mean 'densenet121', 'densenet201' or 'densenet161'? "
                   "('archspec list' lists the bundled specs)\n")
    with pytest.raises(SpecReferenceError) as e:
        load_spec("archspec:densenet121.yaml")
    assert e.value.hint == "did you mean 'archspec:densenet121'?"


def test_a_missing_path_is_still_a_missing_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spec in ("nowhere.yaml", "models/net", "./net"):  # a suffix or a '/': a path
        status, _, err = run(capsys, "build", spec)
        assert status == 2 and err == f"error: no spec file at '{spec}'\n"
    status, _, err = run(capsys, "build", "resnt/resnet50")  # a '/' but close to a bundled name
    assert status == 2 and err == ("error: no spec file at 'resnt/resnet50'\n  hint: did you mean 'resnet/resnet50', "
                                   "'resnet/se_resnet50' or 'resnet/resnet152'? ('archspec list' lists the bundled specs)\n")
    status, _, err = run(capsys, "build", "densenet121.yaml")  # not here, but bundled under that stem
    assert status == 2 and err == "error: no spec file at 'densenet121.yaml'\n  hint: did you mean the bundled spec 'densenet121'?\n"


def test_list_shows_the_bundled_specs_by_name(tmp_path, monkeypatch, capsys):
    """(The real bundle is listed by the wheel test below, from the installed package.)"""
    (tmp_path / "fam").mkdir()
    (tmp_path / "ok.yaml").write_text("archspec: 1\nname: ok\ndescription: a tiny net\ninput: [3, 8, 8]\n"
                                      "graph:\n  c: {op: conv2d, out: 2, kernel: 3}\n")
    (tmp_path / "fam" / "net.yaml").write_text("archspec: 1\nextends: ../ok.yaml\nname: net\n")
    monkeypatch.setattr("archspec._bundled.folder", lambda: tmp_path)
    status, out, err = run(capsys, "list")
    assert status == 0 and err == ""
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["ok", "fam/net"]
    assert out.splitlines()[3].split()[1:] == ["a", "tiny", "net", "56", "1,944", "3x8x8"]
    monkeypatch.setattr("archspec._bundled.folder", lambda: None)
    status, _, err = run(capsys, "list")
    assert status == 2 and err.startswith("archspec: error: the bundled specs are not installed with this archspec")


# -- extends: archspec:NAME ---------------------------------------------------------------------


def test_extends_a_bundled_spec_by_name(tmp_path):
    variant = tmp_path / "mine.yaml"
    variant.write_text("archspec: 1\nextends: archspec:densenet121\nname: mine\nparams: {num_classes: 10}\n")
    doc = load_document(variant)
    assert doc.data["name"] == "mine" and doc.data["params"]["num_classes"] == 10
    assert [Path(f).resolve() for f in doc.files] == [(SPECS / "densenet121.yaml").resolve(), variant.resolve()]
    assert Path(doc.locs.value(("graph", "features")).file).resolve() == (SPECS / "densenet121.yaml").resolve()


def test_an_error_inside_the_bundled_base_is_located_there(tmp_path):
    variant = tmp_path / "mine.yaml"
    variant.write_text("archspec: 1\nextends: archspec:densenet121\nname: mine\nparams: {growth_rate: 0}\n")
    with pytest.raises((SpecSchemaError, SpecShapeError)) as e:
        load_spec(variant)
    base = SPECS / "densenet121.yaml"
    lines = base.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip().startswith("conv1: {op: conv2d"))
    assert Path(e.value.loc.file).resolve() == base.resolve()
    assert (e.value.loc.line, e.value.loc.col) == (line, lines[line - 1].index("${bn_size") + 1)
    assert "'out': found 0" in e.value.message


def test_extends_an_unknown_bundled_name(tmp_path):
    variant = tmp_path / "mine.yaml"
    variant.write_text("archspec: 1\nextends: archspec:densnet121\n")
    with pytest.raises(SpecReferenceError) as e:
        load_spec(variant)
    assert render(e.value) == (
        f"{e.value.loc.file}:2:10: error: no bundled spec is named 'archspec:densnet121' "
        "(expected 'archspec:' and a bundled spec's name, such as 'archspec:densenet121')\n"
        "    2 | extends: archspec:densnet121\n"
        "      |          ^^^^^^^^^^^^^^^^^^^\n"
        "  hint: did you mean 'archspec:densenet121', 'archspec:densenet201' or 'archspec:densenet161'? "
        "('archspec list' lists the bundled specs)")


@pytest.mark.parametrize("written", ["densenet121.yaml", "densenet121"])
def test_extends_a_bundled_stem_as_a_file_hints_the_name(tmp_path, written):
    variant = tmp_path / "mine.yaml"
    variant.write_text(f"archspec: 1\nextends: {written}\n")
    with pytest.raises(SpecReferenceError) as e:
        load_spec(variant)
    assert (e.value.loc.line, e.value.loc.col) == (2, 10)
    assert e.value.hint == "did you mean the bundled spec 'archspec:densenet121'?"


# -- the wheel ----------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    """The environment of a user's shell: nothing that points Python at this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _check(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv with the wheel built from this source installed in it (built once per session)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy, so that the build leaves nothing (build/, *.egg-info) in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in ("archspec", "specs"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # the build backend, as pip wheel or python -m build call it, from this environment: no network
    # (setuptools>=70.1 comes with the 'test' extra; Python 3.12's venvs have no setuptools of their own)
    _check([sys.executable, "-c", "import sys; from setuptools import build_meta; build_meta.build_wheel(sys.argv[1])",
            str(tmp / "dist")], cwd=source)
    wheel = next((tmp / "dist").glob("archspec-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        inside = set(z.namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "archspec").rglob("*.py") if "__pycache__" not in p.parts}
    specs = {"archspec/specs/" + p.relative_to(SPECS).as_posix() for p in SPECS.rglob("*") if p.suffix in (".yaml", ".json")}
    assert modules <= inside and specs <= inside, sorted((modules | specs) - inside)

    venv = tmp / "venv"
    _check([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _check([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--force-reinstall",
            "--disable-pip-version-check", "--quiet", str(wheel)], cwd=tmp)
    purelib = _check([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).stdout.strip()
    outer = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(purelib, "outer-environment.pth").write_text("".join(f"{p}\n" for p in outer if os.path.isdir(p)))
    return venv


def test_the_wheel_builds_bundled_specs_by_name(installed, tmp_path):
    bin_dir = installed / ("Scripts" if os.name == "nt" else "bin")
    env = _env()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    (tmp_path / "mine.yaml").write_text(
        "archspec: 1\nextends: archspec:densenet121\nname: densenet_cifar\ninput: [3, 32, 32]\nparams: {num_classes: 10}\n")

    # `archspec list` infers every bundled spec (seconds, on one core): it runs beside the rest
    listing = subprocess.Popen([str(bin_dir / "archspec"), "list"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        _the_rest(bin_dir, tmp_path, env)
        listed, errors = listing.communicate(timeout=300)
    finally:
        if listing.poll() is None:
            listing.kill()
            listing.wait()
    assert listing.returncode == 0, errors
    rows = {line.split()[0]: line for line in listed.splitlines()[2:]}
    assert sorted(rows) == sorted(names())  # every bundled spec, by the name that builds it
    assert "7,978,856" in rows["densenet121"] and "25,557,032" in rows["resnet/resnet50"]
    assert "GoogLeNet / Inception v1" in rows["googlenet"] and "13,004,888" in rows["googlenet"] \
        and "1.498 G" in rows["googlenet"]


def _the_rest(bin_dir: Path, tmp_path: Path, env: dict[str, str]) -> None:
    validated = _check([str(bin_dir / "archspec"), "validate", "vit_b_16", "mine.yaml"], tmp_path, env).stdout
    assert validated == ("vit_b_16: ok (vit_b_16, 86,567,656 parameters, 17.564 GMACs at 3x224x224)\n"
                         "mine.yaml: ok (densenet_cifar, 6,964,106 parameters, 57.8 MMACs at 3x32x32)\n")

    script = """
import sys
from pathlib import Path
import archspec
from archspec import SpecError, compile_spec, load_spec
from archspec._bundled import folder
from archspec.cli import main
venv = Path(sys.prefix).resolve()
assert Path(archspec.__file__).resolve().is_relative_to(venv), archspec.__file__
assert folder().is_relative_to(venv), folder()
model = compile_spec("densenet121", device="meta")
print("densenet121", sum(p.numel() for p in model.parameters()))
print("resnet50", load_spec("resnet50").name)
print("mine", sum(p.numel() for p in compile_spec("mine.yaml", device="meta").parameters()))
Path("bad.yaml").write_text("archspec: 1\\nextends: archspec:densenet121\\nname: bad\\nparams: {growth_rate: 0}\\n")
try:
    load_spec("bad.yaml")
except SpecError as e:
    print("bad", Path(e.loc.file).resolve().relative_to(venv).as_posix().split("site-packages/")[1], e.loc.line, e.loc.col)
sys.exit(main(["build", "googlenet", "--depth", "1"]))  # `archspec build googlenet`, without a second torch import
"""
    out = _check([str(bin_dir / "python"), "-c", script], tmp_path, env).stdout
    lines = (SPECS / "densenet121.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip().startswith("conv1: {op: conv2d"))
    assert out.splitlines()[:5] == ["densenet121 7978856", "resnet50 resnet50", "mine 6964106",
                                    f"bad archspec/specs/densenet121.yaml {line} {lines[line - 1].index('${bn_size') + 1}",
                                    "googlenet: GoogLeNet / Inception v1, torchvision layout, two auxiliary classifiers"]
    assert "parameters  13,004,888 (6,624,904 in the eval graph)" in out
