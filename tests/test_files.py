"""Every place archspec touches the file system, tried as a hostile or unlucky user would:
outputs onto devices, FIFOs, symlinks, folders and full disks; inputs that are FIFOs,
devices, symlink loops or unsafe pickles. Each test names the defect of issue 9 it pins."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from archspec import SpecReferenceError, WeightsError, compile_spec, load_spec
from archspec._diagnostics import render
from archspec._errors import Loc, SpecSchemaError
from archspec._schema import json_schema
from archspec.cli import main
from reference import installed_command

SMALL = "archspec: 1\nname: small\ninput: [3, 8, 8]\ngraph:\n  c: {op: conv2d, out: 4, kernel: 3}\n  f: {op: flatten}\n"
# 3 x 32 x 32 -> 200: a 2.4 MB weight, more than a 1 MB disk holds
LARGE = "archspec: 1\nname: large\ninput: [3, 32, 32]\ngraph:\n  f: {op: flatten}\n  fc: {op: linear, out: 200}\n"
SCHEMA = json.dumps(json_schema(), indent=2) + "\n"


def run(capsys, *args):
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def device_node(path: Path, kind: int, major: int, minor: int) -> Path:
    """A device node (a twin of /dev/null, /dev/full, a disk) in a test folder, so that a
    regression can never replace the machine's own."""
    try:
        os.mknod(path, kind | 0o666, os.makedev(major, minor))
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))  # a folder mounted 'nodev' refuses to open it
    except OSError as e:
        pytest.skip(f"cannot make a usable device node here ({e.strerror}): needs root, and a folder without 'nodev'")
    return path


@contextmanager
def fifo_watch(fifo: Path):
    """Yields a record of whether anything opened ``fifo`` for reading. Whatever does would
    wait forever for a writer: after a few seconds a writer is opened and closed (so the
    reader sees an empty file and the test fails instead of hanging), and that is recorded."""
    done = threading.Event()
    record = {"opened for reading": False}

    def rescue():
        while not done.wait(3):
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only while a reader has it open
            except OSError:
                continue
            record["opened for reading"] = True
            os.close(fd)

    thread = threading.Thread(target=rescue, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        done.set()
        thread.join()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- 1. `-o` onto what is not a regular file ---------------------------------------------------


def test_output_onto_a_character_device_writes_through_it(tmp_path, capsys):
    null = device_node(tmp_path / "null", stat.S_IFCHR, 1, 3)
    before = os.stat(null)
    assert run(capsys, "schema", "-o", null) == (0, "", "")
    after = os.lstat(null)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev  # still the device, not a 143 KB file
    assert listing(tmp_path) == ["null"]  # and no temporary file beside it


def test_output_onto_dev_null(capsys):
    assert run(capsys, "schema", "-o", "/dev/null") == (0, "", "")
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_output_onto_a_fifo_with_a_reader_writes_through_it(tmp_path, capsys):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader has it open before the command runs
    os.set_blocking(reader, True)
    received = bytearray()
    finished = threading.Event()

    def drain():  # until the writer has come and gone (before it comes, a read finds no writer: b"")
        while True:
            chunk = os.read(reader, 65536)
            if chunk:
                received.extend(chunk)
            elif received or finished.wait(0.01):
                return

    thread = threading.Thread(target=drain)
    thread.start()
    try:
        status, out, err = run(capsys, "schema", "-o", fifo)
    finally:
        finished.set()
        thread.join()
        os.close(reader)
    assert (status, out, err) == (0, "", "")
    assert received.decode() == SCHEMA
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and listing(tmp_path) == ["pipe.json"]


def test_output_onto_a_fifo_nobody_reads_is_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    status, out, err = run(capsys, "schema", "-o", fifo)
    assert status == 1 and out == ""
    assert err == f"archspec: error: cannot write {fifo}: it is a pipe (FIFO) that no process is reading\n"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and listing(tmp_path) == ["pipe.json"]


def test_output_onto_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path, capsys):
    real = tmp_path / "real.json"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to("real.json")
    assert run(capsys, "schema", "-o", link) == (0, "", "")
    assert link.is_symlink() and os.readlink(link) == "real.json"
    assert real.read_text() == SCHEMA and stat.S_IMODE(real.stat().st_mode) == 0o640
    assert listing(tmp_path) == ["link.json", "real.json"]


def test_output_onto_a_dangling_symlink_creates_its_target(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    link = tmp_path / "link.json"
    link.symlink_to("out/schema.json")
    assert run(capsys, "schema", "-o", link) == (0, "", "")
    assert link.is_symlink() and (tmp_path / "out" / "schema.json").read_text() == SCHEMA


def test_output_onto_a_symlink_loop_is_refused(tmp_path, capsys):
    loop = tmp_path / "loop.json"
    loop.symlink_to("loop.json")
    status, out, err = run(capsys, "schema", "-o", loop)
    assert status == 1
    assert err == f"archspec: error: cannot write {loop}: it is a symlink loop (a link that leads, through links, back to itself)\n"
    assert os.readlink(loop) == "loop.json" and listing(tmp_path) == ["loop.json"]


def test_output_onto_a_block_device_is_refused(tmp_path, capsys):
    disk = device_node(tmp_path / "disk", stat.S_IFBLK, 7, 0)  # a loop device's numbers; never opened
    status, out, err = run(capsys, "schema", "-o", disk)
    assert status == 1
    assert err == (f"archspec: error: cannot write {disk}: it is a block device (a disk); archspec writes regular files, "
                   "and through character devices (such as /dev/null) and pipes\n")
    assert stat.S_ISBLK(os.lstat(disk).st_mode)


def test_an_output_is_refused_before_the_work_not_after_it(tmp_path, capsys, write_spec):
    spec = write_spec(SMALL)
    status, out, err = run(capsys, "build", spec, "-o", tmp_path / "no" / "such" / "m.pt")
    assert status == 1 and out == ""  # no summary printed: nothing was built
    assert err == f"archspec: error: cannot write {tmp_path / 'no' / 'such' / 'm.pt'}: no such folder\n"


# -- 7. the mode of an existing output; a trailing slash ------------------------------------


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_an_existing_output_keeps_its_mode(tmp_path, capsys, mode):
    target = tmp_path / "schema.json"
    target.write_text("old")
    target.chmod(mode)
    assert run(capsys, "schema", "-o", target)[0] == 0
    assert target.read_text() == SCHEMA and stat.S_IMODE(target.stat().st_mode) == mode


@pytest.mark.parametrize("command", [["schema"], ["graph", "SPEC"], ["export", "SPEC", "--format", "state_dict"]])
def test_a_name_ending_in_a_slash_is_a_folder_and_is_refused(tmp_path, capsys, write_spec, command):
    spec = write_spec(SMALL)
    args = [str(spec) if a == "SPEC" else a for a in command]
    target = f"{tmp_path / 'new.dot'}/"
    status, out, err = run(capsys, *args, "-o", target)
    assert status == 1 and out == ""
    assert err == f"archspec: error: cannot write {target}: a name ending in '/' names a folder; give a file name\n"
    assert listing(tmp_path) == [spec.name]  # no file called 'new.dot'


# -- 3. a full disk -----------------------------------------------------------------------------


@pytest.fixture
def disk_fills(monkeypatch):
    """The disk fills after 100 bytes: a write to any file past that fails with ENOSPC."""
    real = os.write
    written = [0]

    def write(fd, data):
        if fd > 2:
            written[0] += len(data)
            if written[0] > 100:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


def _needs(fmt):
    if fmt == "onnx":
        for name in ("onnx", "onnxscript"):
            pytest.importorskip(name, reason="the onnx extra is not installed")


@pytest.mark.parametrize("command", [
    ["build", "SPEC"],
    ["export", "SPEC", "--format", "torchscript"],
    ["export", "SPEC", "--format", "exported"],
    ["export", "SPEC", "--format", "state_dict"],
    ["export", "SPEC", "--format", "onnx"],
    ["schema"],
    ["graph", "SPEC"],
], ids=["build", "torchscript", "exported", "state_dict", "onnx", "schema", "graph"])
def test_a_full_disk_is_one_clear_error_and_keeps_the_previous_file(tmp_path, capsys, write_spec, disk_fills, command):
    if "--format" in command:
        _needs(command[-1])
    spec = write_spec(LARGE, name="large.yaml")
    target = tmp_path / ("out.dot" if command[0] == "graph" else "out.bin")
    target.write_bytes(b"previous")
    args = [str(spec) if a == "SPEC" else a for a in command]
    status, out, err = run(capsys, *args, "-o", target)
    assert status == 1
    assert err == f"archspec: error: cannot write {target}: no space left on device\n"
    assert target.read_bytes() == b"previous"
    assert listing(tmp_path) == ["large.yaml", target.name]  # no temporary file left


def test_a_full_device_is_one_clear_error(tmp_path, capsys):
    full = device_node(tmp_path / "full", stat.S_IFCHR, 1, 7)  # a twin of /dev/full
    status, out, err = run(capsys, "schema", "-o", full)
    assert status == 1 and err == f"archspec: error: cannot write {full}: no space left on device\n"
    assert stat.S_ISCHR(os.lstat(full).st_mode)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs, where the machine lets the tests mount one (root, and a kernel that allows it)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                                         capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root, and a machine that allows mounting)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("command", [["build"], ["export", "--format", "torchscript"], ["export", "--format", "state_dict"]],
                         ids=["build", "torchscript", "state_dict"])
def test_a_really_full_disk(small_disk, write_spec, command):
    """On a real 1 MB file system, in a process of its own: torch's serialisers once printed
    a C++ traceback (build -o) or aborted the process (torchscript, exit 134) here."""
    spec = write_spec(LARGE, name="large.yaml")
    target = small_disk / "model.pt"
    target.write_bytes(b"previous")
    done = subprocess.run([installed_command(), command[0], str(spec), *command[1:], "-o", str(target)],
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert done.stderr == f"archspec: error: cannot write {target}: no space left on device\n"
    assert target.read_bytes() == b"previous" and listing(small_disk) == ["model.pt"]


# -- 2. inputs that are FIFOs or devices --------------------------------------------------------


def test_weights_from_a_fifo_are_refused_without_waiting(tmp_path, capsys, write_spec):
    spec = write_spec(SMALL)
    fifo = tmp_path / "weights.pt"
    os.mkfifo(fifo)
    with fifo_watch(fifo) as watch:
        status, out, err = run(capsys, "build", spec, "--weights", fifo)
        with pytest.raises(WeightsError, match="is a pipe"):
            compile_spec(spec, weights=fifo)
    assert not watch["opened for reading"]
    assert status == 1
    assert err == f"archspec: error: '{fifo}' is a pipe (FIFO), not a regular file (archspec reads only regular files)\n"


def test_weights_from_a_device_are_refused(capsys, write_spec):
    status, _, err = run(capsys, "build", write_spec(SMALL), "--weights", "/dev/zero")
    assert status == 1
    assert err == "archspec: error: '/dev/zero' is a character device, not a regular file (archspec reads only regular files)\n"


def test_quoting_a_spec_line_never_opens_a_fifo(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    error = SpecSchemaError("something", Loc(str(fifo), 3, 1))  # say the spec was swapped for a FIFO since it was read
    with fifo_watch(fifo) as watch:
        text = render(error)
    assert not watch["opened for reading"]
    assert text == f"{fifo}:3:1: error: something"


# -- 4. symlink loops ---------------------------------------------------------------------------


def _loop(folder: Path, name: str = "loop.yaml") -> Path:
    path = folder / name
    path.symlink_to(name)
    return path


def test_a_spec_that_is_a_symlink_loop(tmp_path, capsys):
    loop = _loop(tmp_path)
    with pytest.raises(SpecReferenceError) as e:
        load_spec(loop)
    assert e.value.message == f"cannot read '{loop}': it is a symlink loop (a link that leads, through links, back to itself)"
    for command in ("validate", "build"):
        status, out, err = run(capsys, command, loop)
        assert status == 2 and "Traceback" not in err
        assert f"error: cannot read '{loop}': it is a symlink loop" in err


def test_list_reports_a_looping_file_and_goes_on(tmp_path, capsys, monkeypatch):
    (tmp_path / "ok.yaml").write_text(SMALL)
    _loop(tmp_path)
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, "list", ".")
    assert status == 2
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert sorted(rows) == ["loop.yaml", "ok.yaml"]
    assert rows["loop.yaml"].split(None, 1)[1].startswith("invalid: cannot read 'loop.yaml': it is a symlink loop")
    assert rows["ok.yaml"].endswith("3x8x8")
    assert err == "1 invalid; 'archspec validate FILE' shows the full diagnostics\n"


def test_extends_naming_a_symlink_loop_is_located_at_the_extends(tmp_path):
    _loop(tmp_path)
    (tmp_path / "a.yaml").write_text(SMALL)  # a near name, which "did you mean" used to offer
    variant = tmp_path / "v.yaml"
    variant.write_text("archspec: 1\nextends: loop.yaml\nname: v\n")
    with pytest.raises(SpecReferenceError) as e:
        load_spec(variant)
    assert (e.value.loc.line, e.value.loc.col) == (2, 10)
    assert e.value.message == "'extends' names 'loop.yaml', which cannot be read: it is a symlink loop " \
                              "(a link that leads, through links, back to itself)"
    assert e.value.hint is None


def test_extends_naming_a_dangling_symlink(tmp_path):
    (tmp_path / "base.yaml").symlink_to("gone.yaml")
    variant = tmp_path / "v.yaml"
    variant.write_text("archspec: 1\nextends: base.yaml\nname: v\n")
    with pytest.raises(SpecReferenceError) as e:
        load_spec(variant)
    assert e.value.loc.line == 2
    assert e.value.message == "'extends' names 'base.yaml', a symlink to 'gone.yaml', which does not exist"


# -- 7. what an `extends` error shows ----------------------------------------------------------


def test_extends_onto_a_file_that_is_not_a_spec_shows_its_name_not_its_content(tmp_path, capsys):
    secret = tmp_path / "notes.txt"
    secret.write_text("root:x:0:0:SECRET-TOKEN-1234 this file is not a spec, and its text must not be echoed\n")
    (tmp_path / "base.yaml").symlink_to(secret)
    variant = tmp_path / "v.yaml"
    variant.write_text("archspec: 1\nextends: base.yaml\nname: v\n")
    status, out, err = run(capsys, "validate", variant)
    assert status == 2
    n = len(secret.read_text().strip())
    assert err.splitlines()[0] == (f"{tmp_path / 'base.yaml'}:1:1: error: the top level of a spec must be a mapping; found "
                                   f"plain text ({n} characters) (expected keys such as 'archspec: 1', 'name', 'input' and 'graph')")
    assert "SECRET" not in err  # nor is its first line quoted


def test_a_long_output_path_is_shown_whole(tmp_path, capsys):
    target = tmp_path / ("d" * 60) / ("m" * 60 + ".json")  # a long path, but one a file system takes
    assert 150 < len(str(target)) <= 255
    status, _, err = run(capsys, "schema", "-o", target)
    assert status == 1 and err == f"archspec: error: cannot write {target}: no such folder\n"


def test_a_very_long_extends_name_is_a_located_spec_error(tmp_path, capsys):
    variant = tmp_path / "v.yaml"
    variant.write_text("archspec: 1\nextends: " + "a" * 5000 + ".yaml\nname: v\n")
    with pytest.raises(SpecReferenceError) as e:
        load_spec(variant)
    assert (e.value.loc.line, e.value.loc.col) == (2, 10)
    assert e.value.message.startswith("'extends' names 'aaaa")
    assert e.value.message.endswith("aaaa.yaml (5,005 characters)', which cannot be read: the name is too long for the file system")
    assert len(e.value.message) < 400  # the name is shortened, not echoed whole
    status, out, err = run(capsys, "validate", variant)
    assert status == 2 and "Traceback" not in err and "File name too long" not in err


# -- 5. unsafe pickles --------------------------------------------------------------------------


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def _pickles(folder: Path) -> dict[str, Path]:
    files = {"blocked module": folder / "system.pt", "unsupported instruction": folder / "ext.pt",
             "builtin": folder / "eval.pt"}
    torch.save({"w": torch.zeros(2), "x": _RunsCode()}, files["blocked module"])  # names posix.system
    files["unsupported instruction"].write_bytes(b"\x80\x02\x82\x01.")  # EXT1: only Python objects use it
    torch.save({"w": torch.zeros(2), "f": eval}, files["builtin"])
    return files


@pytest.mark.parametrize("kind,names", [("blocked module", "the pickle names posix.system"),
                                        ("unsupported instruction", "the pickle uses instruction 130"),
                                        ("builtin", "the pickle names eval")])
def test_a_pickle_with_python_objects_is_refused_without_unsafe_advice(tmp_path, capsys, write_spec, kind, names):
    path = _pickles(tmp_path)[kind]
    status, out, err = run(capsys, "build", write_spec(SMALL), "--weights", path)
    assert status == 1 and err.count("\n") == 1
    assert err.startswith(f"archspec: error: cannot read '{path}' safely: it holds Python objects besides tensors ({names}")
    assert "which archspec will not unpickle" in err
    assert "re-save the weights alone, as a plain state_dict: torch.save(model.state_dict(), path)" in err
    for advice in ("weights_only=False", "weights_only` set to `False", "will likely succeed", "Re-running"):
        assert advice not in err


# -- 7. a multi-line override --------------------------------------------------------------------


@pytest.mark.parametrize("breaks", ["\n", "\r", "\r\n", "\u2028"])
def test_an_override_spanning_lines_is_refused(capsys, write_spec, breaks):
    status, out, err = run(capsys, "build", write_spec(SMALL), "--set", f"c=1{breaks}graph: {{}}")
    assert status == 2 and out == ""
    assert err == ("archspec: error: --set 'c': the value spans several lines; an override is one YAML value on one line "
                   "(a list or mapping in flow style: [6,12,24,16] or {a: 1})\n")


def test_the_installed_command_is_the_console_script():
    """The `archspec` that `pip install` put beside the interpreter, not `python -m`."""
    done = subprocess.run([installed_command(), "schema"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == SCHEMA and done.stderr == ""
