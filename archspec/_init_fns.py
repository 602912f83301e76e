"""The initialisers of the spec language: ``torch.nn.init``'s functions, their arguments
with torch's default for each, and the static verdicts on them.

Every rule about an initialiser is written here once and called where it applies: which
arguments a function takes and which words (``mode``, ``nonlinearity``) it accepts (the
value type :class:`~archspec._values.InitValue`, the schema's ``init:`` rules and JSON
Schema), ``a < b`` for the bounded ones (validate, and resolve once expressions have
values), whether a tensor has the fans a function needs and whether every value it can
draw fits float32 (infer, from the shapes), and the arguments torch's call receives
(lower's :mod:`archspec._initialize`).

What it deliberately does not do: import torch, or fill a tensor (that is
:mod:`archspec._initialize`'s); it computes verdicts and leaves the messages' places
(file, line, node) to the stage that calls it.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic_core import PydanticCustomError

__all__ = ["INIT_DEFAULTS", "INIT_ARGS", "FAN_INITS", "NUMBER_INIT_ARGS", "POSITIVE_INIT_ARGS", "NONLINEARITIES", "INIT_WORDS", "INIT_FIELDS", "FLOAT32_MAX", "NORMAL_REACH", "fits_float32", "init_args", "initialiser_json", "fans", "missing_fans", "init_reach", "init_fits_float32", "init_args_error"]


#: the initialisers of ``init:`` rules and ``param`` nodes: torch.nn.init's function of that
#: name (with a trailing ``_``), the arguments each takes, in order, and torch's default for
#: each (``None``: it has none, the argument must be given)
INIT_DEFAULTS: dict[str, dict[str, Any]] = {
    "normal": {"mean": 0.0, "std": 1.0},
    "trunc_normal": {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0},
    "uniform": {"a": 0.0, "b": 1.0},
    "constant": {"value": None},
    "zeros": {},
    "ones": {},
    "kaiming_normal": {"a": 0.0, "mode": "fan_in", "nonlinearity": "leaky_relu"},
    "kaiming_uniform": {"a": 0.0, "mode": "fan_in", "nonlinearity": "leaky_relu"},
    "xavier_normal": {"gain": 1.0},
    "xavier_uniform": {"gain": 1.0},
}
INIT_ARGS = {fn: tuple(args) for fn, args in INIT_DEFAULTS.items()}
#: the initialisers that compute a tensor's fans, which only tensors of 2 or more dimensions have
FAN_INITS = tuple(fn for fn in INIT_ARGS if fn.startswith(("kaiming", "xavier")))
#: the initialisers' arguments that are numbers (those of ``POSITIVE_INIT_ARGS`` > 0), and those
#: that are words, with the words each takes (torch.nn.init's names)
NUMBER_INIT_ARGS = ("mean", "std", "a", "b", "value", "gain")
POSITIVE_INIT_ARGS = ("std", "gain")
NONLINEARITIES = ("relu", "leaky_relu", "linear", "tanh", "sigmoid", "selu")
INIT_WORDS = {"mode": ("fan_in", "fan_out"), "nonlinearity": NONLINEARITIES}
#: every argument an initialiser may take, in the order the schema lists them
INIT_FIELDS = (*NUMBER_INIT_ARGS, *INIT_WORDS)
FLOAT32_MAX = 3.4028234663852886e38
#: how many standard deviations from the mean a normal draw is taken to reach at most, for
#: the static check that an initialiser's values fit float32 (float32's normal sampler
#: cannot go beyond about 6; the margin covers any other dtype)
NORMAL_REACH = 40.0
_GAINS = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 0.75}


def fits_float32(number: float) -> bool:
    """Whether a float32 tensor can hold ``number``: finite and at most :data:`FLOAT32_MAX` in size."""
    return math.isfinite(number) and abs(number) <= FLOAT32_MAX


def init_args(spec: dict[str, Any]) -> dict[str, Any]:
    """The arguments of the initialiser ``spec`` (``{fn: ..., args}``), with torch's default
    for each one left out."""
    given = {k: v for k, v in spec.items() if k != "fn"}
    return {**{k: v for k, v in INIT_DEFAULTS[spec["fn"]].items() if v is not None}, **given}


def initialiser_json(number: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of an initialiser ``{fn: ..., args}`` whose numbers are ``number``."""
    return {"type": "object", "required": ["fn"], "additionalProperties": False,
            "properties": {"fn": {"enum": list(INIT_ARGS)}, **{k: number for k in NUMBER_INIT_ARGS},
                           **{k: {"enum": list(v)} for k, v in INIT_WORDS.items()}}}


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """A weight's fan in and fan out, as ``torch.nn.init`` computes them (2+ dimensions)."""
    field = math.prod(shape[2:])
    return shape[1] * field, shape[0] * field


def missing_fans(spec: Any, shape: tuple[int, ...]) -> str | None:
    """The fn of the initialiser ``spec`` where it computes fans (:data:`FAN_INITS`) that a
    tensor of ``shape`` does not have (fewer than 2 dimensions); else ``None``."""
    fn = spec.get("fn", "") if isinstance(spec, dict) else ""
    return fn if fn in FAN_INITS and len(shape) < 2 else None


def init_reach(spec: Any, shape: tuple[int, ...]) -> float:
    """The largest magnitude an initialiser can give an element of a tensor of ``shape``
    (fans need 2 or more dimensions: :func:`missing_fans` first)."""
    if not isinstance(spec, dict):
        return abs(float(spec))
    fn, args = spec["fn"], init_args(spec)
    if fn in ("zeros", "ones"):
        return 1.0
    if fn == "constant":
        return abs(args["value"])
    if fn == "uniform":
        a, b = args["a"], args["b"]
        return max(abs(a), abs(b), b - a)  # torch draws a + (b - a) * u
    if fn == "trunc_normal":
        return max(abs(args["a"]), abs(args["b"]), abs(args["mean"]) + NORMAL_REACH * args["std"])
    if fn == "normal":
        return abs(args["mean"]) + NORMAL_REACH * args["std"]
    fan_in, fan_out = fans(shape)
    if fn.startswith("kaiming"):
        a, nonlinearity = args["a"], args["nonlinearity"]
        gain = math.sqrt(2.0 / (1 + a * a)) if nonlinearity == "leaky_relu" else _GAINS[nonlinearity]
        std = gain / math.sqrt(max(fan_in if args["mode"] == "fan_in" else fan_out, 1))
    else:
        std = args["gain"] * math.sqrt(2.0 / max(fan_in + fan_out, 1))
    return std * (math.sqrt(3.0) if fn.endswith("uniform") else NORMAL_REACH)


def init_fits_float32(spec: Any, shape: tuple[int, ...]) -> bool:
    """Whether every value the initialiser ``spec`` can give a tensor of ``shape`` fits float32."""
    return fits_float32(init_reach(spec, shape))


def init_args_error(fn: str, args: dict[str, Any]) -> PydanticCustomError | None:
    """What is wrong with the arguments ``args`` of the initialiser ``fn`` (a key of
    :data:`INIT_ARGS`) as a whole, or ``None``: an argument ``fn`` does not take (the first
    in ``args``' order), one without a default left out (``constant``'s ``value``), or
    ``a >= b`` for ``uniform`` and ``trunc_normal`` (torch's default for a bound left out;
    where either is still an expression the check waits for its value). Each value's own
    kind and range is its value type's to check, before this."""
    defaults = INIT_DEFAULTS[fn]
    for name in args:
        if name not in defaults:
            return PydanticCustomError("archspec_value", "'{fn}' takes no argument '{name}' (it takes: {allowed})",
                                       {"fn": fn, "name": name, "allowed": ", ".join(defaults) or "nothing"})
    for name, default in defaults.items():
        if default is None and name not in args:
            return PydanticCustomError("archspec_value", "'{fn}' needs '{name}'", {"fn": fn, "name": name})
    if "a" in defaults and "b" in defaults:  # bounds
        lo, hi = args.get("a", defaults["a"]), args.get("b", defaults["b"])
        if isinstance(lo, float) and isinstance(hi, float) and lo >= hi:
            return PydanticCustomError("archspec_value", "'{fn}' needs a < b, found a={a} and b={b}", {"fn": fn, "a": lo, "b": hi})
    return None
