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
