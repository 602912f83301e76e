"""The op registry's shape rules against torch itself, on random settings: the inferred
output shape is the one the module produces, and a setting torch refuses is refused
statically (a ShapeError or a parameter error), never the other way round."""

from __future__ import annotations

import random
import warnings

import pytest
import torch
from pydantic import ValidationError

from archspec import ops


def ours(op: str, params: dict, shape: tuple):
    try:
        concrete = ops.get(op).params.model_validate(params, context={"concrete": True})
        return ops.get(op).infer(concrete, [shape], ["x"]).shape
    except (ops.ShapeError, ValidationError):
        return None


def theirs(module_fn, shape: tuple):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tuple(module_fn()(torch.randn(1, *shape)).shape[1:])
    except (RuntimeError, ValueError):
        return None


@pytest.mark.parametrize("seed", range(4))
def test_conv2d_shapes_agree_with_torch(seed):
    rng = random.Random(seed)
    for _ in range(150):
        c, h, w = rng.randint(1, 6), rng.randint(1, 9), rng.randint(1, 9)
        k, s, d = [rng.randint(1, 5), rng.randint(1, 5)], [rng.randint(1, 3), rng.randint(1, 3)], [rng.randint(1, 3), rng.randint(1, 3)]
        p = rng.choice([[rng.randint(0, 3), rng.randint(0, 3)], "same", "valid"])
        g, out = rng.randint(1, 3), rng.randint(1, 6)
        params = {"out": out, "kernel": k, "stride": s, "padding": p, "dilation": d, "groups": g}
        assert ours("conv2d", params, (c, h, w)) == theirs(lambda: torch.nn.Conv2d(c, out, k, s, p, d, g), (c, h, w)), params


@pytest.mark.parametrize("op", ["maxpool2d", "avgpool2d"])
def test_pool_shapes_agree_with_torch(op):
    rng = random.Random(op)
    for _ in range(600):
        h, w = rng.randint(1, 9), rng.randint(1, 9)
        k, s, p = [rng.randint(1, 5), rng.randint(1, 5)], [rng.randint(1, 4), rng.randint(1, 4)], [rng.randint(0, 3), rng.randint(0, 3)]
        ceil = rng.random() < 0.5
        params = {"kernel": k, "stride": s, "padding": p, "ceil_mode": ceil}
        if op == "maxpool2d":
            d = [rng.randint(1, 3), rng.randint(1, 3)]
            params["dilation"] = d
            module = lambda: torch.nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)  # noqa: E731
        else:
            module = lambda: torch.nn.AvgPool2d(k, s, p, ceil_mode=ceil)  # noqa: E731
        assert ours(op, params, (2, h, w)) == theirs(module, (2, h, w)), (params, h, w)
