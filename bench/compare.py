"""Benchmark: archspec's compiled specs against the torchvision / timm models they reproduce.

For every bundled spec with a library reference (the seeds and torchvision's zoo), measured
in one run, each figure a ratio archspec / reference (below 1: archspec is faster):

* **compile**: ``archspec.compile_spec(spec)`` against the reference's public constructor
  (both build and initialise every weight: the constructor fills each tensor twice, with
  torch's default then the model's own rule; archspec once), the median of several calls
  after a warm-up; archspec's time is also split by stage (load, validate, resolve, infer,
  codegen, construct on the meta device, initialise);
* **forward**: the reference's ``state_dict`` is loaded into the compiled model with
  ``strict=True``; eval mode, ``torch.no_grad()``, float32, the same random batch (default
  8) at the spec's input size. Three models are timed in interleaved rounds (archspec
  eager, archspec ``optimize="inference"``, reference eager), so that drift of the machine
  affects all alike; the median per forward of each is reported, and the outputs are
  checked to agree first. With ``--compiled``, ``compile_spec(optimize="compiled")``
  against ``torch.compile(reference)`` as well (slow: each is compiled first);
* **a large network** (``--large``): compiling the AlexNet-paper spec with its first conv
  deleted (788,411,368 parameters) against torch creating the same tensors and filling
  each once with the same initialiser (medians of 3 interleaved rounds, each freeing what
  it made); ``--profile`` prints where the compile's time goes;
* **validate** (``--validate``): the whole process ``python -m archspec.cli validate
  specs/densenet264.yaml`` against ``python -c "import torch"`` and ``python -c pass``.

Goals: compile <= 1.0, the large compile <= 1.3, forward eager <= 1.03, optimised
forward geometric mean <= 0.75 and none above 1.0, compiled <= 1.05, validate <= 0.25 s.
Nothing is compared against stored numbers. ``torch`` uses as many threads as the machine
has cores (printed). Timings mean something only on an otherwise idle machine: for each
network the script reports the share of the CPUs other processes took meanwhile (from
``/proc/stat``) and flags it above 5%. The table is printed and written as JSON
(``--json``, default ``bench/compare.json``).

The reference model code is a development aid, not a dependency of archspec; install it
without touching torch, then run from the repository root::

    bash ../shared/tools/install-reference-models.sh
    PYTHONPATH=../shared/tools/reference-shim python bench/compare.py --large --validate
    PYTHONPATH=../shared/tools/reference-shim python bench/compare.py --only googlenet densenet121 --repeat 30

Without torchvision the script says so and exits 0; without timm it skips Xception and
SE-ResNet-50. By default the number of timing rounds adapts to each network's forward
time (``--budget`` seconds of timed forwards per network); ``--repeat N`` fixes it.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import archspec

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

INSTALL_HINT = (
    "install the reference models with `bash ../shared/tools/install-reference-models.sh` and run with "
    "`PYTHONPATH=../shared/tools/reference-shim python bench/compare.py` (from the repository root)"
)

#: forward timing: warm-up (at least this many forwards per model and this many seconds),
#: the time budget and bounds of the adaptive round count
WARMUP_FORWARDS, WARMUP_S = 3, 3.0
FORWARD_BUDGET_S = 10.0  # seconds of timed forwards (all models) per network, by default (--budget)
MIN_ROUNDS, MAX_ROUNDS = 7, 40
#: compile timing: calls per side after one warm-up call
COMPILE_CALLS = 5
COMPILE_BUDGET_S = 8.0  # fewer calls where one takes seconds
#: the large network: interleaved rounds of its compile and of torch creating its tensors
LARGE_ROUNDS = 3
#: other processes' share of the CPUs above which a network's numbers are flagged
BUSY = 0.05


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class Network:
    """A bundled spec and how to build its reference: ``library`` and a constructor call."""

    name: str
    library: str | None  # "torchvision", "timm" or None (no reference)
    build: Callable[[object], torch.nn.Module] | None  # takes the imported library module
    note: str = ""
    path: str = ""  # the spec, relative to specs/ (default: NAME.yaml)

    @property
    def spec(self) -> Path:
        return SPECS / (self.path or f"{self.name}.yaml")


SEEDS = [
    Network("alexnet", "torchvision", lambda tv: tv.models.alexnet()),
    Network("alexnet-paper", None, None, "no library reference (the 2012 paper's one-tower AlexNet with LRN)"),
    Network("googlenet", "torchvision", lambda tv: tv.models.googlenet(aux_logits=True, init_weights=True)),
    Network("inception_v3", "torchvision", lambda tv: tv.models.inception_v3(aux_logits=True, init_weights=True)),
    Network("xception", "timm", lambda timm: timm.create_model("legacy_xception")),
    Network("densenet121", "torchvision", lambda tv: tv.models.densenet121()),
    Network("densenet161", "torchvision", lambda tv: tv.models.densenet161()),
    Network("densenet169", "torchvision", lambda tv: tv.models.densenet169()),
    Network("densenet201", "torchvision", lambda tv: tv.models.densenet201()),
    Network(
        "densenet264",
        "torchvision",
        lambda tv: tv.models.densenet.DenseNet(growth_rate=32, block_config=(6, 12, 64, 48), num_init_features=64),
    ),
]


#: bundled variants that no library builds (nothing to compare with)
NO_REFERENCE = {"vit_cifar"}


def zoo_networks() -> list[Network]:
    """torchvision's classification zoo: every spec in a family folder, its file name the
    torchvision model name (SE-ResNet-50 is timm's ``seresnet50``)."""
    out = []
    for path in sorted(SPECS.glob("*/*.yaml")):
        rel = str(path.relative_to(SPECS))
        if path.stem in NO_REFERENCE:
            continue
        if path.stem == "se_resnet50":
            out.append(Network(path.stem, "timm", lambda timm: timm.create_model("seresnet50"), path=rel))
        else:
            out.append(Network(path.stem, "torchvision", lambda tv, n=path.stem: tv.models.get_model(n), path=rel))
    return out


NETWORKS = SEEDS + zoo_networks()


def import_library(name: str) -> tuple[object | None, str]:
    """Import ``torchvision`` (with its models) or ``timm``: the module, or None and why not."""
    try:
        if name == "torchvision":
            import torchvision
            import torchvision.models  # noqa: F401

            return torchvision, ""
        import timm

        return timm, ""
    except ModuleNotFoundError as exc:
        return None, f"{name} is not installed ({exc})."
    except Exception as exc:  # e.g. torchvision's compiled ops without the reference shim
        return None, f"{name} cannot be imported ({type(exc).__name__}: {exc}); is the reference shim on PYTHONPATH?"


# --------------------------------------------------------------------------- timing


def median_call_ms(fn: Callable[[], object], calls: int) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``calls`` calls, after one warm-up
    (fewer calls for what takes seconds: at least 2, about ``COMPILE_BUDGET_S`` in all)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    calls = max(2, min(calls, int(COMPILE_BUDGET_S / max(first, 1e-3))))
    times = []
    for _ in range(calls):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def compile_stages_ms(spec: Path) -> dict[str, float]:
    """archspec's compile of ``spec`` split by stage (one call, after the timed ones)."""
    from archspec._infer import infer
    from archspec._initialize import init_plan, materialize
    from archspec._limits import DEFAULT_LIMITS
    from archspec._load import load_document
    from archspec._lower import _build_tree, codegen
    from archspec._resolve import resolve
    from archspec._schema import validate

    marks = [time.perf_counter()]
    doc = load_document(spec, DEFAULT_LIMITS)
    marks.append(time.perf_counter())
    checked = validate(doc)
    marks.append(time.perf_counter())
    graph = resolve(doc, checked, {}, None, DEFAULT_LIMITS, outputs=None)
    marks.append(time.perf_counter())
    infer(graph, DEFAULT_LIMITS)
    marks.append(time.perf_counter())
    model, sources = codegen(graph)
    marks.append(time.perf_counter())
    _build_tree(model, graph, graph.inplace)
    for path, code in sources.items():
        model.get_submodule(path)._archspec_install(code)
    marks.append(time.perf_counter())
    materialize(model, init_plan(graph))
    marks.append(time.perf_counter())
    return {stage: 1e3 * (b - a) for stage, a, b in zip(STAGES, marks, marks[1:])}


STAGES = ("load", "validate", "resolve", "infer", "codegen", "construct", "initialise")


class OtherLoad:
    """A context manager: the CPU time other processes took while it was open, as a fraction
    of the whole machine (``fraction``; None where ``/proc/stat`` cannot be read).

    Timings are only comparable on an otherwise idle machine; this says when it was not.
    """

    fraction: float | None = None

    def __enter__(self) -> OtherLoad:
        self._start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        if self._start is None or end is None:
            return
        busy, own, wall = (e - s for e, s in zip(end, self._start))
        if wall > 0:
            self.fraction = max(0.0, busy - own) / (wall * (os.cpu_count() or 1))

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        """(machine busy CPU seconds, this process's CPU seconds, wall seconds)."""
        try:
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal: busy is all but idle and iowait
        busy = sum(ticks) - ticks[3] - ticks[4]
        own = os.times()
        return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system, time.perf_counter()


def forward_s(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x)
    return time.perf_counter() - start


def interleaved_forward_ms(models: list[torch.nn.Module], x: torch.Tensor, rounds: int | None, budget: float):
    """Time each model's forward on ``x`` in turn, round after round: (median ms of each, rounds).

    Warm-up first (the first forwards allocate and pick kernels; this machine also has
    slow spells of a second or two). ``rounds=None`` picks the number of rounds from the
    warm-up forwards' speed so that the timed part takes about ``budget`` seconds.
    """
    warm, start = [], time.perf_counter()
    while len(warm) < WARMUP_FORWARDS or time.perf_counter() - start < WARMUP_S:
        warm.append(sum(forward_s(m, x) for m in models))
    if rounds is None:
        rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(budget / min(warm))))
    times: list[list[float]] = [[] for _ in models]
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for m, t in zip(models, times):
                t.append(forward_s(m, x))
    finally:
        if gc_was_enabled:
            gc.enable()
    return [1e3 * statistics.median(t) for t in times], rounds


# --------------------------------------------------------------------------- one network


@dataclass
class Result:
    name: str
    fwd_archspec_ms: float | None = None
    fwd_optimized_ms: float | None = None
    fwd_reference_ms: float | None = None
    fwd_compiled_ms: float | None = None  # compile_spec(optimize="compiled")
    fwd_reference_compiled_ms: float | None = None  # torch.compile(reference)
    compile_archspec_ms: float | None = None
    ctor_reference_ms: float | None = None
    stages_ms: dict[str, float] | None = None
    other_load: float | None = None  # fraction of the CPUs other processes used meanwhile
    skipped: str = ""


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def _agree(out: object, ref: object) -> str:
    if not isinstance(out, torch.Tensor) or not isinstance(ref, torch.Tensor) or out.shape != ref.shape:
        return f"outputs differ in kind or shape: {_describe(out)} vs {_describe(ref)}"
    diff, scale = (out - ref).abs().max().item(), ref.abs().max().item()
    return "" if diff <= 1e-4 * max(scale, 1.0) else f"outputs differ: max abs diff {diff:.3g} (max |ref| {scale:.3g})"


def bench_network(net: Network, lib: object, args: argparse.Namespace) -> Result:
    result = Result(net.name)
    build_reference = lambda: net.build(lib)  # noqa: E731
    compile_archspec = lambda: archspec.compile_spec(net.spec)  # noqa: E731

    result.compile_archspec_ms = median_call_ms(compile_archspec, COMPILE_CALLS)
    result.ctor_reference_ms = median_call_ms(build_reference, COMPILE_CALLS)
    result.stages_ms = compile_stages_ms(net.spec)
    print(
        f"  compile   archspec {result.compile_archspec_ms:8.1f} ms   reference {result.ctor_reference_ms:8.1f} ms"
        f"   ratio {ratio(result.compile_archspec_ms, result.ctor_reference_ms):.3f}"
    )
    print("  stages    " + ", ".join(f"{k} {v:.1f}" for k, v in result.stages_ms.items()) + " ms")

    torch.manual_seed(0)
    reference = build_reference()
    state = reference.state_dict()
    try:
        model = archspec.compile_spec(net.spec, weights=_saved(state))
        optimized = archspec.compile_spec(net.spec, weights=_saved(state), optimize="inference")
    except archspec.WeightsError as exc:
        result.skipped = "state_dict does not load with strict=True"
        print(f"  skipped: {result.skipped}:\n{exc}")
        return result
    model.float().eval()
    reference.float().eval()
    x = torch.randn(args.batch, *archspec.load_spec(net.spec).input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = reference(x)
        for what, out in (("archspec", model(x)), ("optimised", optimized(x))):
            problem = _agree(out, ref)
            if problem:
                result.skipped = f"{what}: {problem}"
                print(f"  skipped: {result.skipped}")
                return result
        (fa, fo, fr), n = interleaved_forward_ms([model, optimized, reference], x, args.repeat, args.budget)
        result.fwd_archspec_ms, result.fwd_optimized_ms, result.fwd_reference_ms = fa, fo, fr
        print(f"  forward   archspec {fa:8.1f} ms   optimised {fo:8.1f} ms   reference {fr:8.1f} ms"
              f"   ratios {fa / fr:.3f} / {fo / fr:.3f}   (median of {n} interleaved rounds)")
        if args.compiled:
            fast = archspec.compile_spec(net.spec, weights=_saved(state), optimize="compiled")
            ref_fast = torch.compile(reference)
            problem = _agree(fast(x), ref_fast(x))  # compiles both
            if problem:
                print(f"  compiled: {problem}")
            else:
                (fc, frc), n = interleaved_forward_ms([fast, ref_fast], x, args.repeat, args.budget)
                result.fwd_compiled_ms, result.fwd_reference_compiled_ms = fc, frc
                print(f"  compiled  archspec {fc:8.1f} ms   reference {frc:8.1f} ms   ratio {fc / frc:.3f}")
    return result


def _saved(state: dict) -> str:
    """The reference's weights in a checkpoint file (compile_spec loads before folding)."""
    import tempfile

    path = Path(tempfile.gettempdir()) / "archspec-bench-weights.pt"
    torch.save(state, path)
    return str(path)


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}"
    return type(value).__name__


# --------------------------------------------------------------------------- report


def summary_table(results: list[Result]) -> str:
    headers = ["network", "compile ms", "ctor ms ref", "compile ratio", "fwd ms ref", "eager ratio", "optimised ratio",
               "compiled ratio", "others"]
    rows = []
    for r in results:
        if r.compile_archspec_ms is None:
            rows.append([r.name, *["-"] * 7, f"({r.skipped})"])
            continue
        eager, opt = ratio(r.fwd_archspec_ms, r.fwd_reference_ms), ratio(r.fwd_optimized_ms, r.fwd_reference_ms)
        compiled = ratio(r.fwd_compiled_ms, r.fwd_reference_compiled_ms)
        rows.append([
            r.name,
            _ms(r.compile_archspec_ms),
            _ms(r.ctor_reference_ms),
            _flag(ratio(r.compile_archspec_ms, r.ctor_reference_ms), 1.0),
            _ms(r.fwd_reference_ms),
            _flag(eager, 1.03),
            _flag(opt, 1.0),
            _flag(compiled, 1.05),
            _load(r.other_load) + (f"  ({r.skipped})" if r.skipped else ""),
        ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers[:-1])]
    line = lambda cells: "  ".join(  # noqa: E731
        [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:])] + [cells[-1]]
    )
    out = [line(headers), line(["-" * w for w in widths] + ["-" * len(headers[-1])])]
    out += [line(row) for row in rows]
    opts = [ratio(r.fwd_optimized_ms, r.fwd_reference_ms) for r in results if r.fwd_optimized_ms]
    comps = [ratio(r.compile_archspec_ms, r.ctor_reference_ms) for r in results if r.ctor_reference_ms]
    if opts:
        out.append(f"\noptimised / reference eager: geometric mean {geomean(opts):.3f} over {len(opts)} networks "
                   f"(goal <= 0.75), worst {max(opts):.3f} (goal <= 1.0)")
    if comps:
        out.append(f"compile / constructor: geometric mean {geomean(comps):.3f}, worst {max(comps):.3f} (goal <= 1.0)")
    return "\n".join(out)


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _flag(value: float | None, goal: float) -> str:
    return "-" if value is None else f"{value:.3f}" + (" *" if value > goal else "")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _load(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{100 * value:.0f}%" + (" !" if value > BUSY else "")


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# --------------------------------------------------------------------------- main


# --------------------------------------------------------------------------- the large network


def large_network(profile: bool) -> dict[str, float]:
    """Compile the AlexNet-paper spec without its first conv (788,411,368 parameters)
    against torch creating the same tensors and filling each once with the same initialiser."""
    import tempfile

    from archspec._initialize import init_plan, init_tensor

    text = (SPECS / "alexnet-paper.yaml").read_text()
    lines = [line for line in text.splitlines() if "# 0: conv 1" not in line]
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "alexnet-large.yaml"
        spec.write_text("\n".join(lines) + "\n")
        graph = archspec.load_spec(spec)
        plan = init_plan(graph)
        shapes = graph.state_shapes()
        n = sum(math.prod(shapes[k]) for k in shapes if k in plan)
        print(f"\n== large: alexnet-paper without its first conv, {n:,} parameters and buffers")

        def by_torch() -> None:
            tensors = []
            for key, shape in shapes.items():
                t = torch.empty(shape)
                init_tensor(t, plan[key])  # the same torch.nn.init call, once
                tensors.append(t)

        def timed(fn: Callable[[], object]) -> float:  # what it allocates is freed inside, as in by_torch
            gc.collect()
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        times: dict[str, list[float]] = {"compile": [], "torch": []}
        with OtherLoad() as load:
            for _ in range(LARGE_ROUNDS):  # interleaved: one machine's drift affects both alike
                times["compile"].append(timed(lambda: archspec.compile_spec(spec)))
                times["torch"].append(timed(by_torch))
        compile_s, torch_s = statistics.median(times["compile"]), statistics.median(times["torch"])
        print(f"  compile {compile_s:.2f} s   torch create + fill once {torch_s:.2f} s   ratio {compile_s / torch_s:.3f}"
              f" (goal <= 1.3; medians of {LARGE_ROUNDS} interleaved rounds)   others {_load(load.fraction)}")
        if profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            archspec.compile_spec(spec)
            profiler.disable()
            print("  profile of the compile (cumulative time, top 12):")
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(12)
    return {"parameters": n, "compile_s": compile_s, "torch_s": torch_s, "ratio": compile_s / torch_s,
            "other_load": load.fraction}


# --------------------------------------------------------------------------- validate, a whole process


def validate_process(runs: int = 15) -> dict[str, float]:
    """Median wall time of the whole process ``archspec validate specs/densenet264.yaml``,
    against ``python -c "import torch"`` and ``python -c pass``, interleaved."""
    import subprocess

    commands = {
        "validate": [sys.executable, "-m", "archspec.cli", "validate", str(SPECS / "densenet264.yaml")],
        "import torch": [sys.executable, "-c", "import torch"],
        "python": [sys.executable, "-c", "pass"],
    }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    # as an installed package runs: from bytecode (pip compiles a wheel's modules when it
    # installs them, and Python caches them on the first import), which an environment
    # with PYTHONDONTWRITEBYTECODE set would deny an editable checkout (every import then
    # compiles archspec's source again: 0.49 s instead of 0.30 here)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    times: dict[str, list[float]] = {k: [] for k in commands}
    for k, cmd in commands.items():  # warm the file cache and write the bytecode
        subprocess.run(cmd, env=env, capture_output=True, check=True)
    for _ in range(runs):
        for k, cmd in commands.items():
            start = time.perf_counter()
            subprocess.run(cmd, env=env, capture_output=True, check=True)
            times[k].append(time.perf_counter() - start)
    out = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n== validate, whole process (median of {runs}): archspec validate densenet264 {out['validate']:.3f} s "
          f"(goal <= 0.25 s);  python -c 'import torch' {out['import torch']:.3f} s;  python -c pass {out['python']:.3f} s")
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [n.name for n in NETWORKS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=names, help=f"networks to run (of: {', '.join(names)})")
    parser.add_argument("--repeat", type=int, metavar="N", help="interleaved timing rounds per network (default: adaptive)")
    parser.add_argument("--batch", type=int, default=8, metavar="N", help="batch size (default: 8)")
    parser.add_argument("--budget", type=float, default=FORWARD_BUDGET_S, metavar="S",
                        help=f"seconds of timed forwards per network (default: {FORWARD_BUDGET_S:.0f})")
    parser.add_argument("--compiled", action="store_true", help="also time torch.compile (slow: compiles each network)")
    parser.add_argument("--large", action="store_true", help="also compile the 788M-parameter AlexNet variant")
    parser.add_argument("--profile", action="store_true", help="with --large: profile its compile")
    parser.add_argument("--validate", action="store_true", help="also time the validate command as a whole process")
    parser.add_argument("--no-networks", action="store_true", help="only the --large / --validate sections")
    parser.add_argument("--json", default=str(ROOT / "bench" / "compare.json"), metavar="FILE",
                        help="where to write the results (default: bench/compare.json)")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    return args


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = [] if args.no_networks else [n for n in NETWORKS if args.only is None or n.name in args.only]

    libraries = {}
    for name in sorted({n.library for n in selected if n.library}):
        libraries[name], why = import_library(name)
        if libraries[name] is None:
            print(why)
    if "torchvision" in libraries and libraries["torchvision"] is None and not (args.large or args.validate):
        print(f"torchvision is missing: the reference models cannot be built, nothing to compare. To compare, {INSTALL_HINT}.")
        return 0

    threads = cpu_count()
    torch.set_num_threads(threads)
    versions = [f"torch {torch.__version__}", f"archspec {archspec.__version__}"]
    versions += [f"{k} {getattr(v, '__version__', '?')}" for k, v in libraries.items() if v is not None]
    print(", ".join(versions))
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at start")
    print(f"threads: torch.set_num_threads({threads}) -> {torch.get_num_threads()};  batch {args.batch}, float32, eval, no_grad")
    print(f"timing rounds: {args.repeat if args.repeat else f'adaptive ({MIN_ROUNDS}..{MAX_ROUNDS}, about {args.budget:.0f} s per network)'}")

    results = []
    for net in selected:
        print(f"\n== {net.name}  ({net.spec.relative_to(ROOT)})")
        if net.library is None:
            print(f"  skipped: {net.note}")
            results.append(Result(net.name, skipped="no reference"))
            continue
        lib = libraries[net.library]
        if lib is None:
            print(f"  skipped: {net.library} is missing; to include it, {INSTALL_HINT}")
            results.append(Result(net.name, skipped=f"{net.library} missing"))
            continue
        with OtherLoad() as load:
            result = bench_network(net, lib, args)
        result.other_load = load.fraction
        if load.fraction is not None:
            print(f"  other processes used {100 * load.fraction:.0f}% of the CPUs meanwhile")
        results.append(result)
        gc.collect()

    if results:  # none with --no-networks
        print("\nSummary (ratio = archspec / reference; * marks a forward ratio above 1.03;")
        print("others = CPU share other processes took meanwhile, ! above 5%: rerun on an idle machine)\n")
        print(summary_table(results))
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": {"cores": threads, "torch": torch.__version__,
              "archspec": archspec.__version__, "python": sys.version.split()[0]},
              "command": " ".join(["python bench/compare.py", *sys.argv[1:]]), "batch": args.batch,
              "networks": [asdict(r) for r in results]}
    if args.large:
        report["large"] = large_network(args.profile)
    if args.validate:
        report["validate"] = validate_process()
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
