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
command line. Warnings (a spec's, and any library's) are shown once each, after the
command, on every path. A reader that stops early (``archspec build x | head``) ends the
command quietly, with status 0, after the warnings.

This module parses the command line and turns errors into messages; what each command
does is in :mod:`archspec._commands`.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

from . import _commands
from ._commands import UsageError
from ._diagnostics import render, render_warning
from ._errors import SpecError, SpecWarning, WeightsError, WeightsWarning
from .ops._plugins import PluginError

__all__ = ["main"]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found '{text}'")
    return value


def _spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec parameter (the value is read as YAML); repeatable")
    p.add_argument("--input", metavar="C,H,W", help="the input shape to infer for (default: the spec's input)")
    p.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                   help="raise a resource limit, e.g. max_parameters=5e9; repeatable")


def _weights_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="FILE", help="load a checkpoint (a state_dict, or one under 'state_dict'/'model')")
    p.add_argument("--no-strict", action="store_true", help="with --weights: load what fits and report the rest")


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
    p.set_defaults(run=_commands.cmd_build)

    p = sub.add_parser("validate", help="check specs without building them",
                       description="Check each SPEC (schema, references, expressions and shapes) without allocating any "
                                   "weights; one line per spec on stdout, diagnostics on stderr. Exit 0 only if all are valid.")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    _spec_options(p)
    p.set_defaults(run=_commands.cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of the spec language",
                       description="Print the JSON Schema (Draft 2020-12) of the spec language, generated from archspec's "
                                   "models; editors use it through the '# yaml-language-server: $schema=...' modeline.")
    p.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead of stdout (- is stdout)")
    p.set_defaults(run=_commands.cmd_schema)

    p = sub.add_parser("ops", help="list the ops of the spec language, or describe some",
                       description="Without NAME: every op with its kind and what it does. With NAMEs: each op's "
                                   "description and parameters (type and default).")
    p.add_argument("names", nargs="*", metavar="NAME", help="an op, e.g. conv2d")
    p.set_defaults(run=_commands.cmd_ops)

    p = sub.add_parser("list", help="list the specs of a folder",
                       description="List the specs (*.yaml) of DIR with their description, parameters, MACs and input "
                                   "size; without DIR, the bundled specs, by the names that build them "
                                   "(archspec build resnet/resnet50, or resnet50).")
    p.add_argument("dir", nargs="?", metavar="DIR")
    _spec_options(p)
    p.set_defaults(run=_commands.cmd_list)

    p = sub.add_parser("diff", help="what changed between two specs",
                       description="Compare two specs node by node (added, removed, changed ops and shapes), with "
                                   "parameter and MAC deltas and how many state_dict keys of A load into B unchanged. "
                                   "--set and --input apply to both.")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    _spec_options(p)
    p.set_defaults(run=_commands.cmd_diff)

    p = sub.add_parser("graph", help="draw the network (.dot, .mmd, .svg, .png)",
                       description="Draw SPEC as a diagram; the format comes from the extension of FILE: .dot (Graphviz), "
                                   ".mmd (Mermaid), .svg or .png (rendered with Graphviz's dot). Blocks are clusters, "
                                   "edges carry tensor shapes.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="the file to write; - for standard output (DOT)")
    p.add_argument("--format", choices=["dot", "mermaid", "svg", "png"],
                   help="the format, instead of the one FILE's extension names")
    p.add_argument("--depth", type=_positive, default=None, metavar="N",
                   help="draw N levels of blocks; deeper ones are collapsed into one box (default: all)")
    _spec_options(p)
    p.set_defaults(run=_commands.cmd_graph)

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
    p.add_argument("--dynamic-size", action="store_true",
                   help="onnx and exported: the input's height and width dynamic too, not only the batch (refused "
                        "for a network whose spatial size is fixed, e.g. by a ViT's position embedding)")
    _spec_options(p)
    _weights_options(p)
    p.set_defaults(run=_commands.cmd_export)
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
            warnings.simplefilter("always", WeightsWarning)
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
        ours = spec or isinstance(w.message, WeightsWarning)
        key = (render_warning(w.message) if spec else f"archspec: warning: {w.message}") if ours else (w.category, str(w.message))
        if key in seen:
            continue
        seen.add(key)
        if ours:
            print(key, file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno, line=w.line)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
