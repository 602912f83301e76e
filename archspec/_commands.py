"""The commands of ``archspec``, one function each (``cmd_build``, ``cmd_graph``, ...), and
what reads their arguments (``--set``, ``--input``, ``--limit``); :mod:`archspec.cli`
parses the command line, runs one of them and turns its errors into messages and exit
statuses. A command returns its exit status and raises :class:`UsageError` for a mistake on
the command line.

What this module deliberately does not do: parse ``argv`` or print errors (the CLI does),
or import torch at the top (``validate``, ``list``, ``diff`` and ``graph`` never need it).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._diagnostics import render
from ._errors import SpecError
from ._files import check_output, write_file, write_stdout
from ._limits import DEFAULT_LIMITS, Limits
from .ops._registry import fmt_shape

__all__ = ["UsageError", "cmd_build", "cmd_diff", "cmd_export", "cmd_graph", "cmd_list", "cmd_ops", "cmd_schema",
           "cmd_validate"]


class UsageError(Exception):
    """A mistake on the command line (not in a spec)."""


def _parse_value(text: str) -> Any:
    """A ``--set`` value, read as a YAML flow value (YAML 1.2 core scalars)."""
    from ._load import load_text

    try:
        return load_text(f"value: {text}\n").data["value"]
    except SpecError:
        return text


_LINE_BREAKS = "\n\r\x85\u2028\u2029"  # what YAML (PyYAML) takes for the end of a line


def _overrides(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set needs KEY=VALUE, found '{pair}'")
        if any(c in pair for c in _LINE_BREAKS):  # YAML would read the next line as more keys, dropped unseen
            raise UsageError(f"--set {key.strip()!r}: the value spans several lines; an override is one YAML value "
                             "on one line (a list or mapping in flow style: [6,12,24,16] or {a: 1})")
        out[key.strip()] = _parse_value(value.strip())
    return out


def _input_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"--input needs C,H,W (positive integers), found '{text}'") from None
    if not 1 <= len(dims) <= 4 or any(d <= 0 for d in dims):
        raise UsageError(f"--input needs C,H,W (positive integers), found '{text}'")
    return dims


def _limits(pairs: Sequence[str]) -> Limits:
    values: dict[str, int] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in Limits.names():
            raise UsageError(f"--limit needs NAME=VALUE with NAME one of {', '.join(Limits.names())}; found '{pair}'")
        try:
            values[key] = int(float(value))
        except (ValueError, OverflowError):
            raise UsageError(f"--limit {key} needs a finite number, found '{value}'") from None
        if values[key] < 1:
            raise UsageError(f"--limit {key} needs a positive number, found '{value}'")
    return DEFAULT_LIMITS.with_overrides(**values)


def _model(args: argparse.Namespace, graph, device: str | None = None):
    """The compiled module, with --weights loaded (strictly unless --no-strict); on the
    meta device (built, proving the module tree can be made, but nothing allocated) when
    ``device="meta"``."""
    from ._compiler import build_model

    return build_model(graph, weights=args.weights, strict=not args.no_strict, device=device)


STDOUT = "-"  # -o -: standard output, for the text formats


def _check_output(path: str, binary: str | None = None) -> None:
    """Refuse now, before the work, an output that cannot be written: ``-o -`` for a binary
    format (``binary`` says what it is; a terminal would show it as noise), or a file that
    :func:`write_file` would refuse."""
    if path != STDOUT:
        check_output(path)
    elif binary:
        raise UsageError(f"-o -: {binary} is binary and is not written to standard output; "
                         "give a file name ('./-' for a file named '-')")


def _write(path: str, write) -> None:
    """:func:`write_file`, or :func:`write_stdout` for ``-o -``."""
    if path == STDOUT:
        write_stdout(write)
    else:
        write_file(path, write)


def cmd_build(args: argparse.Namespace) -> int:
    from ._summary import format_summary

    if args.output:
        _check_output(args.output, binary="the saved module (torch.save)")  # refused before the work, not after it
    graph = _graph(args)
    # the summary is the inferred graph's; weights are made only to be saved or checked
    model = _model(args, graph, device=None if args.output or args.weights else "meta")
    print(format_summary(graph, depth=args.depth, overrides=_overrides(args.set)))
    if args.weights and model.load_report.complete:  # an incomplete load is reported as a warning already
        print(f"checkpoint  {model.load_report.format()}")
    if args.output:
        import torch

        write_file(args.output, lambda f: torch.save(model, f))
        print(f"saved       {args.output} (load with torch.load(path, weights_only=False); needs archspec installed)")
    return 0


def _graph(args: argparse.Namespace, spec: str | None = None):
    from ._compiler import load_spec

    checkpoint = getattr(args, "checkpoint", None) or None
    try:
        return load_spec(args.spec if spec is None else spec, params=_overrides(args.set),
                         input_shape=_input_shape(args.input), limits=_limits(args.limit), checkpoint=checkpoint)
    except ValueError as e:
        if checkpoint and "checkpoint=" in str(e):
            raise UsageError(str(e).replace("checkpoint=", "--checkpoint ", 1)) from None
        raise


def cmd_validate(args: argparse.Namespace) -> int:
    from ._summary import format_count, totals

    failed = 0
    for spec in args.specs:
        try:
            graph = _graph(args, spec)
        except SpecError as e:
            failed += 1
            count = len(e.errors) + e.omitted if hasattr(e, "errors") else 1
            print(f"{spec}: invalid ({count} error{'s' if count > 1 else ''})", flush=True)
            print(render(e), file=sys.stderr)
            continue
        t = totals(graph)
        print(f"{spec}: ok ({graph.name}, {t.params:,} parameters, {format_count(t.macs)}MACs at {fmt_shape(graph.input_shape)})")
    return 2 if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from ._schema import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
    _write(args.output or STDOUT, lambda f: f.write(text.encode("utf-8")))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from . import _bundled
    from ._summary import format_count, totals

    if args.dir:
        folder = Path(args.dir)
        if not folder.is_dir():
            raise UsageError(f"no such folder: {args.dir}")
        # family folders too (specs/resnet/resnet50.yaml), shown relative to the folder
        paths = sorted((p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml")),
                       key=lambda p: (len(p.relative_to(folder).parts) > 1, str(p.relative_to(folder))))
        shown = {p: str(p.relative_to(folder)) for p in paths}
    else:  # the bundled specs, by the names that build them: densenet121, resnet/resnet50
        folder = _bundled.folder()
        if folder is None:
            raise UsageError("the bundled specs are not installed with this archspec (its 'specs' folder is missing); "
                             "give a folder: archspec list DIR")
        named = _bundled.names(folder)
        paths = list(named.values())
        shown = {p: name for name, p in named.items()}
    if not paths:
        print(f"no specs (*.yaml) in {folder}")
        return 0
    rows = []
    failed = 0
    for path in paths:
        try:
            graph = _graph(args, str(path))
        except SpecError as e:
            failed += 1
            first = e.errors[0] if hasattr(e, "errors") else e
            headline = first.headline()  # 'file:line:col: error: ...', or 'error: ...' when it has no place
            what = headline.split(": error: ", 1)[1] if ": error: " in headline else headline.removeprefix("error: ")
            text = f"invalid: {what}"
            rows.append((shown[path], text if len(text) <= 60 else text[:59] + "…", "", "", ""))
            continue
        t = totals(graph)
        rows.append((shown[path], graph.description or graph.name, f"{t.params:,}", format_count(t.macs).strip(),
                     fmt_shape(graph.input_shape)))
    header = ("spec", "description", "parameters", "MACs", "input")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(5)]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}  {r[4]}".rstrip())
    if failed:
        print(f"{failed} invalid; 'archspec validate FILE' shows the full diagnostics", file=sys.stderr)
    return 2 if failed else 0


def cmd_diff(args: argparse.Namespace) -> int:
    from ._diff import diff, format_diff

    print(format_diff(diff(_graph(args, args.a), _graph(args, args.b))))
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from ._draw import FORMATS, write_graph

    fmt = args.format or ("dot" if args.output == STDOUT else FORMATS.get(Path(args.output).suffix.lower()))
    if fmt is None:
        raise UsageError(f"cannot tell the format of '{args.output}' from its extension; use one of: {', '.join(FORMATS)}")
    _check_output(args.output, binary=f"a {fmt} drawing" if fmt == "png" else None)
    graph = _graph(args)
    write_graph(graph, args.output, depth=args.depth, writer=_write, fmt=fmt)
    if args.output != STDOUT:
        print(f"wrote {args.output}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ._export import FixedSizeError, dynamic_size_refusal, export_model

    refusal = dynamic_size_refusal(args.format) if args.dynamic_size else None
    if refusal:
        raise UsageError(refusal)
    _check_output(args.output, binary=f"the {args.format} export")  # all five formats are binary
    graph = _graph(args)
    model = _model(args, graph)
    if args.optimize:
        from ._optimize import optimize

        # channels-last is a layout for running here; an exported file keeps torch's default
        # layout (torch.export's archive writer handles channels-last weights badly)
        model = optimize(model, graph, channels_last=False)
    try:
        export_model(model, graph, args.format, args.output, writer=write_file, dynamic_size=args.dynamic_size)
    except (OSError, SpecError):
        raise
    except FixedSizeError as e:  # the network's own size, said in full
        if args.debug:
            traceback.print_exc()
        print(f"archspec: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # torch's exporters fail with many kinds of errors
        if args.debug:
            traceback.print_exc()
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"archspec: error: the {args.format} export failed: {first} (--debug shows the traceback)", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({args.format})")
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    from . import ops
    from ._values import shown
    from .ops._user import UserOp

    ops.load_plugins()  # the ops of every installed package too
    if not args.names:
        rows = [(name, ops.REGISTRY[name].category, ops.summary(name)) for name in ops.names()]
        width = max(len(r[0]) for r in rows)
        kind = max(len(r[1]) for r in rows)
        for name, category, doc in rows:
            print(f"{name:<{width}}  {category:<{kind}}  {doc.rstrip('.')}")
        return 0
    for i, name in enumerate(args.names):
        op = ops.get(name)
        if op is None:
            raise UsageError(f"unknown op '{name}'; {ops.unknown_hint(name)}")
        if i:
            print()
        print(f"{name} ({op.category}, {op.inputs()})")
        if op.origin:
            print(f"  a user op {op.origin}")
        print("  " + " ".join(op.doc.replace("``", "").split()))
        for field, info in op.params.model_fields.items():
            kind = next((str(m.expected) for m in info.metadata if hasattr(m, "expected")), "a value")
            default = "required" if info.is_required() else f"default {shown(info.default)}"
            print(f"  {field}: {kind} ({default})")
        user = getattr(op.infer, "__self__", None)
        if isinstance(user, UserOp):
            if user.inputs:
                print(f"  from the input: {', '.join(user.inputs)}")
            if user.fixed:
                print(f"  not settable from a spec (their types have no spec form): {', '.join(user.fixed)}")
    return 0
