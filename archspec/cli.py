"""The ``archspec`` command line: a thin layer over the library.

A SPEC is a spec file (``specs/googlenet.yaml``) or the name of a bundled spec
(``googlenet``, ``resnet/resnet50``, ``archspec:googlenet``): see :mod:`archspec._bundled`
for how a name is told from a path.

Every command that reads a spec accepts ``--set KEY=VALUE`` (the value is read as YAML:
``--set num_classes=10``, ``--set block_config=[6,12,32,32]``, ``--set block_config.2=36``),
``--input C,H,W`` and ``--limit NAME=VALUE``. A mistake in a spec is printed the way a
compiler prints it (file:line:column, the source line, a caret, a hint) and the command
exits with status 2, without a Python traceback (``--debug`` shows it).

Exit status: 0 success, 1 a failure that is not the spec's (a file that cannot be
written, an installed package whose ops fail to load), 2 a mistake in a spec or in the
command line.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._diagnostics import render, render_warning
from ._errors import SpecError, SpecWarning, WeightsError
from ._files import check_output, write_file
from ._limits import DEFAULT_LIMITS, Limits
from .ops._plugins import PluginError
from .ops._registry import fmt_shape

__all__ = ["main"]


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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found '{text}'")
    return value


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


def _spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec parameter (the value is read as YAML); repeatable")
    p.add_argument("--input", metavar="C,H,W", help="the input shape to infer for (default: the spec's input)")
    p.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                   help="raise a resource limit, e.g. max_parameters=5e9; repeatable")


# -- commands -------------------------------------------------------------------------------


def _model(args: argparse.Namespace, graph, device: str | None = None):
    """The compiled module, with --weights loaded (strictly unless --no-strict); on the
    meta device (built, proving the module tree can be made, but nothing allocated) when
    ``device="meta"``."""
    from ._compiler import build_model

    return build_model(graph, weights=args.weights, strict=not args.no_strict, device=device)


def _weights_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="FILE", help="load a checkpoint (a state_dict, or one under 'state_dict'/'model')")
    p.add_argument("--no-strict", action="store_true", help="with --weights: load what fits and report the rest")


def cmd_build(args: argparse.Namespace) -> int:
    from ._summary import format_summary

    if args.output:
        check_output(args.output)  # refused before the work, not after it
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
    if args.output:
        write_file(args.output, lambda f: f.write(text.encode("utf-8")))
    else:
        sys.stdout.write(text)
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

    suffix = Path(args.output).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"cannot tell the format of '{args.output}' from its extension; use one of: {', '.join(FORMATS)}")
    check_output(args.output)
    graph = _graph(args)
    write_graph(graph, args.output, depth=args.depth)
    print(f"wrote {args.output}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ._export import export_model

    check_output(args.output)
    graph = _graph(args)
    model = _model(args, graph)
    if args.optimize:
        from ._optimize import optimize

        # channels-last is a layout for running here; an exported file keeps torch's default
        # layout (torch.export's archive writer handles channels-last weights badly)
        model = optimize(model, graph, channels_last=False)
    try:
        export_model(model, graph, args.format, args.output, writer=write_file)
    except (OSError, SpecError):
        raise
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
    from ._errors import did_you_mean
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
            hint = did_you_mean(name, ops.names())
            raise UsageError(f"unknown op '{name}'" + (f"; {hint}" if hint else "; 'archspec ops' lists them"))
        if i:
            print()
        inputs = {(0, 0): "no input", (1, 1): "one input"}.get(op.arity) or (
            f"{op.arity[0]} or more inputs" if op.arity[1] is None else f"{op.arity[0]} to {op.arity[1]} inputs")
        print(f"{name} ({op.category}, {inputs})")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archspec", description="Declarative architecture specs compiled to PyTorch modules.")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for spec errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("build", help="compile a spec and print its summary table",
                       description="Compile SPEC and print every node with its output shape, parameters and MACs, "
                                   "and the totals.")
    p.add_argument("spec", metavar="SPEC", help="a spec file, e.g. specs/googlenet.yaml, or a bundled spec's name, e.g. googlenet")
    _spec_options(p)
    p.add_argument("--depth", type=_positive, default=None, metavar="N", help="show N levels of the module tree (default: all)")
    p.add_argument("-o", "--output", metavar="FILE", help="save the compiled module with torch.save")
    p.add_argument("--checkpoint", action="append", default=[], metavar="BLOCK",
                   help="checkpoint the activations of these containers in training: a block's name or a container "
                        "path (wildcards allowed); repeatable")
    _weights_options(p)
    p.set_defaults(run=cmd_build)

    p = sub.add_parser("validate", help="check specs without building them",
                       description="Check each SPEC (schema, references, expressions and shapes) without allocating any "
                                   "weights; one line per spec on stdout, diagnostics on stderr. Exit 0 only if all are valid.")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    _spec_options(p)
    p.set_defaults(run=cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of the spec language",
                       description="Print the JSON Schema (Draft 2020-12) of the spec language, generated from archspec's "
                                   "models; editors use it through the '# yaml-language-server: $schema=...' modeline.")
    p.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead of stdout")
    p.set_defaults(run=cmd_schema)

    p = sub.add_parser("ops", help="list the ops of the spec language, or describe some",
                       description="Without NAME: every op with its kind and what it does. With NAMEs: each op's "
                                   "description and parameters (type and default).")
    p.add_argument("names", nargs="*", metavar="NAME", help="an op, e.g. conv2d")
    p.set_defaults(run=cmd_ops)

    p = sub.add_parser("list", help="list the specs of a folder",
                       description="List the specs (*.yaml) of DIR with their description, parameters, MACs and input "
                                   "size; without DIR, the bundled specs, by the names that build them "
                                   "(archspec build resnet/resnet50, or resnet50).")
    p.add_argument("dir", nargs="?", metavar="DIR")
    _spec_options(p)
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("diff", help="what changed between two specs",
                       description="Compare two specs node by node (added, removed, changed ops and shapes), with "
                                   "parameter and MAC deltas and how many state_dict keys of A load into B unchanged. "
                                   "--set and --input apply to both.")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    _spec_options(p)
    p.set_defaults(run=cmd_diff)

    p = sub.add_parser("graph", help="draw the network (.dot, .mmd, .svg, .png)",
                       description="Draw SPEC as a diagram; the format comes from the extension of FILE: .dot (Graphviz), "
                                   ".mmd (Mermaid), .svg or .png (rendered with Graphviz's dot). Blocks are clusters, "
                                   "edges carry tensor shapes.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-o", "--output", metavar="FILE", required=True)
    p.add_argument("--depth", type=_positive, default=None, metavar="N",
                   help="draw N levels of blocks; deeper ones are collapsed into one box (default: all)")
    _spec_options(p)
    p.set_defaults(run=cmd_graph)

    p = sub.add_parser("export", help="export the compiled network for deployment",
                       description="Compile SPEC and export it (eval mode): torchscript (torch.jit.script, .pt), "
                                   "onnx (needs the 'onnx' extra: pip install -e .[onnx]), exported (torch.export, .pt2) "
                                   "state_dict (torch.save of the weights) or safetensors (the weights as a .safetensors "
                                   "file, needs the 'safetensors' extra).")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--format", required=True, choices=["torchscript", "onnx", "exported", "state_dict", "safetensors"])
    p.add_argument("-o", "--output", metavar="FILE", required=True)
    p.add_argument("--optimize", action="store_true",
                   help="optimise for inference first: batch norm folded into the layer before it, eval no-ops dropped "
                        "(--weights load before folding)")
    _spec_options(p)
    _weights_options(p)
    p.set_defaults(run=cmd_export)
    for p in sub.choices.values():  # --debug goes before or after the command
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show Python tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # torch prints this at import when NumPy is absent; it is noise for a CLI user
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SpecWarning)
            status, error = _run(args)
    finally:  # warnings first, on every path; shown once recording has stopped, or each would be recorded again
        try:
            _flush_warnings(caught)
        except BrokenPipeError:  # `2>&1 | head`: stderr's reader is gone too
            _to_devnull(sys.stderr)
    if error:
        try:
            print(error, file=sys.stderr)
        except BrokenPipeError:
            _to_devnull(sys.stderr)
    return status


def _to_devnull(stream) -> None:
    """Point ``stream``'s descriptor at the null device, after its reader has gone (a broken
    pipe): what is still buffered, flushed at exit, then fails nowhere, and the other stream
    stays open (closing it lost the warnings, and Python's exit said 'lost sys.stderr')."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, ValueError):  # not a real file (a test's capture): nothing is flushed to a descriptor
        pass


def _run(args: argparse.Namespace) -> tuple[int, str | None]:
    """Run the command: its exit status, and the error to print (without a traceback)."""
    try:
        status = args.run(args)
        sys.stdout.flush()  # a broken pipe shows here, not at exit
        return status, None
    except BrokenPipeError:  # `archspec build x.yaml | head`: the reader has what it wanted; exit 0, quietly
        _to_devnull(sys.stdout)
        return 0, None
    except (SpecError, UsageError, WeightsError, PluginError, OSError) as e:
        if args.debug:  # the traceback, then the same message and exit status as without --debug
            traceback.print_exc()
        if isinstance(e, SpecError):
            return 2, render(e)
        if isinstance(e, UsageError):
            return 2, f"archspec: error: {e}"
        if isinstance(e, (WeightsError, PluginError)):
            return 1, f"archspec: error: {e}"
        return 1, f"archspec: error: {e.strerror or e}: {e.filename or ''}".rstrip(": ")


def _flush_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Show the recorded warnings, each once: a spec's as a compiler shows them, any other
    (torch's, a library's) the way Python does. Called after the recording has stopped."""
    seen = set()
    for w in caught:
        spec = isinstance(w.message, SpecWarning)
        key = render_warning(w.message) if spec else (w.category, str(w.message))
        if key in seen:
            continue
        seen.add(key)
        if spec:
            print(key, file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno, line=w.line)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
