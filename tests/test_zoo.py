"""torchvision's classification zoo as specs (specs/<family>/), each against its reference
fixture (shared/reference/zoo, copied into tests/fixtures/zoo). The transformers' own
checks (attention, tokens, their representatives) are in test_transformers.py.

Cheap checks for every model: the state_dict keys and shapes and the parameter count on
the meta device, the static MACs of the eval graph at torchvision's resolution against
its published figure, and the float64 logits under the fixture recipe's weights (built
straight from the recipe onto a meta-device module: no default initialisation). The
expensive checks run on one representative per family: forward and backward, torch.fx
and TorchScript against eager, the default initialisation, and train-mode behaviour."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from archspec import compile_spec, load_spec
from archspec._compiler import build_model
from archspec._summary import totals
from reference import (GAIN1_FIXTURES, NO_TORCHVISION, SPECS, gain1_fixture, assert_modes_equal, assert_optimized_agrees, deterministic_input, materialize, relative_error, torchvision_models,
                       zoo_fixture, zoo_specs)

ZOO = zoo_specs()
NAMES = sorted(ZOO)

#: the issue's table: every CNN of torchvision's classification zoo, and its Swin Transformers, by family
FAMILIES = {
    "resnet": ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
               "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"],
    "vgg": ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"],
    "squeezenet": ["squeezenet1_0", "squeezenet1_1"],
    "mobilenet": ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"],
    "mnasnet": ["mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"],
    "shufflenet": ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"],
    "efficientnet": [f"efficientnet_b{i}" for i in range(8)] + ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"],
    "regnet": [f"regnet_{k}_{s}" for k in "xy" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")]
              + ["regnet_y_128gf"],
    "convnext": ["convnext_tiny", "convnext_small", "convnext_base", "convnext_large"],
    "vit": ["vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"],
    "swin": ["swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b"],
}
#: bundled examples beyond torchvision's zoo, each with a fixture measured from its reference
EXAMPLES = {"se_resnet50": "timm's seresnet50"}
#: bundled variants with no reference to compare with (test_transformers.py checks them)
VARIANTS = {"vit_cifar": "ViT for 32x32 CIFAR images, extending vit_b_16"}


def test_the_zoo_is_complete():
    expected = sorted(n for names in FAMILIES.values() for n in names)
    assert len(expected) == 72
    assert NAMES == sorted(expected + list(EXAMPLES))
    for family, names in FAMILIES.items():
        assert {ZOO[n].parent.name for n in names} == {family}  # one folder per family
        assert {zoo_fixture(n)["family"] for n in names} == {family}
    # every spec of a family folder is checked here, or is a variant checked elsewhere
    # (the dense-prediction folder, segmentation/, is test_segmentation.py's and test_unet.py's)
    assert sorted(p.stem for p in SPECS.glob("*/*.yaml") if p.parent.name != "segmentation") == sorted(NAMES + list(VARIANTS))


# ---------------------------------------------------------------------------------------
# every model, cheaply


def gmacs_agree(ours: float, published: float) -> bool:
    """Within 0.5 % of torchvision's figure, or within its rounding (it prints 3 decimals,
    so 0.057 stands for 0.0565 to 0.0575; mobilenet_v3_small and shufflenet_v2_x0_5 are
    counted to 0.0565 and 0.0405 by torch's own flop counter)."""
    return abs(ours - published) <= max(0.005 * published, 0.0005)


@pytest.mark.parametrize("name", NAMES)
def test_keys_shapes_parameters_and_macs(name):
    ref = zoo_fixture(name)
    graph = load_spec(ZOO[name])
    model = build_model(graph, device="meta")
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == {k: s for k, s in ref["state_dict"]}
    assert sum(p.numel() for p in model.parameters()) == ref["parameters"]
    # at the resolution of torchvision's published figures: a ViT is made for its image
    # size (its position embedding's length follows from it: vit_h_14's weights are for
    # 518x518, 633,470,440 parameters), a CNN takes any input
    size = ref["tv_resolution"]
    graph = load_spec(ZOO[name], **({"image_size": size} if "image_size" in graph.params else {"input_shape": (3, size, size)}))
    assert totals(graph).params == ref["tv_params"]
    assert gmacs_agree(totals(graph).macs / 1e9, ref["tv_gmacs"]), (totals(graph).macs / 1e9, ref["tv_gmacs"])


def test_the_macs_tolerance_is_the_published_rounding():
    assert gmacs_agree(0.0565104, 0.057) and gmacs_agree(0.040476, 0.04) and gmacs_agree(374.6, 374.57)
    assert not gmacs_agree(0.0585, 0.057) and not gmacs_agree(376.6, 374.57)


#: float64 logits that take 10 s to a minute each on 2 cores, run with -m slow: the
#: transformers' fixtures are at 224x224 (256 for Swin V2), so each family's smallest
#: model (vit_b_32, swin_t, swin_v2_t) stands for the rest by default; regnet_y_128gf's
#: 644 M float64 weights alone take 5 GB and most of its time
SLOW_LOGITS = ("vit_b_16", "vit_l_16", "vit_l_32", "vit_h_14", "swin_s", "swin_b", "swin_v2_s", "swin_v2_b", "regnet_y_128gf")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_LOGITS else n for n in NAMES])
def test_logits_match_the_reference(name):
    # the networks the shared recipe makes chaotic are checked against torchvision's logits
    # under the recipe with gain 1 instead (reference.GAIN1_FIXTURES says why)
    ref = gain1_fixture(name) or zoo_fixture(name)
    gain = 1.0 if "recipe" in ref else 2.0
    graph = load_spec(ZOO[name])
    model = materialize(build_model(graph, device="meta"), threads=2, graph=graph, gain=gain).eval()
    with torch.no_grad():
        out = model(deterministic_input(ref["input_shape"][-1]))
    expected = torch.tensor(ref["logits"], dtype=torch.float64)
    assert out.dtype == torch.float64 and out.shape == expected.shape
    assert relative_error(out, expected) < 1e-9
    # the same weights, optimised for inference, in float32 (issue 10)
    assert_optimized_agrees(graph, model, deterministic_input(ref["input_shape"][-1]))


def test_the_gain1_fixtures_stand_for_the_chaotic_networks_only():
    chaotic = ["efficientnet_v2_l", "efficientnet_v2_m", "efficientnet_v2_s"]
    assert sorted(p.stem for p in GAIN1_FIXTURES.glob("*.json")) == chaotic
    for name in chaotic:
        ref = gain1_fixture(name)
        assert ref["input_shape"] == zoo_fixture(name)["input_shape"] and len(ref["logits"]) == 2


# ---------------------------------------------------------------------------------------
# train mode: stochastic depth and dropout as torchvision


def drop_rates(name: str, op: str, **overrides) -> dict[str, float]:
    graph = load_spec(ZOO[name], **overrides)
    return {graph.nodes[p].display: graph.nodes[p].concrete.p for p in graph.order if graph.nodes[p].op == op}


def test_efficientnet_stochastic_depth_follows_torchvision_schedule():
    # torchvision: block k of n (over all stages) drops rows with p = 0.2 * k / n; the
    # module acts only where the block adds its input back (stride 1, same channels)
    rates = drop_rates("efficientnet_b0", "stochastic_depth")
    stages = [1, 2, 2, 3, 3, 4, 1]
    n = sum(stages)
    expected = {}
    k = 0
    for s, count in enumerate(stages, 1):
        for i in range(count):
            if i > 0:  # in b0 only a stage's later blocks keep resolution and channels
                expected[f"features.{s}.{i}.stochastic_depth"] = 0.2 * k / n
            k += 1
    assert rates == expected


def test_convnext_stochastic_depth_follows_torchvision_schedule():
    # torchvision: block k of n drops rows with p = prob * k / (n - 1), every block
    for name, stages, prob in (("convnext_tiny", [3, 3, 9, 3], 0.1), ("convnext_large", [3, 3, 27, 3], 0.5)):
        rates = drop_rates(name, "stochastic_depth")
        n = sum(stages)
        expected = {}
        k = 0
        for s, count in enumerate(stages):
            for i in range(count):
                expected[f"features.{2 * s + 1}.{i}.stochastic_depth"] = prob * k / (n - 1.0)
                k += 1
        assert rates == expected


def test_swin_stochastic_depth_and_shifts_follow_torchvision():
    # torchvision: block k of n drops rows with p = prob * k / (n - 1), one module used for
    # both residual branches (here two nodes with the same rate); every second block of a
    # stage shifts its windows by half a window
    for name, depths, prob, window in (("swin_t", [2, 2, 6, 2], 0.2, 7), ("swin_v2_b", [2, 2, 18, 2], 0.5, 8)):
        graph = load_spec(ZOO[name])
        rates = {graph.nodes[p].display: graph.nodes[p].concrete.p for p in graph.order if graph.nodes[p].op == "stochastic_depth"}
        shifts = {graph.nodes[p].display: graph.nodes[p].concrete.shift for p in graph.order if graph.nodes[p].op == "window_attention"}
        n = sum(depths)
        expected, expected_shifts = {}, {}
        k = 0
        for s, count in enumerate(depths):
            for i in range(count):
                block = f"features.{2 * s + 1}.{i}"
                expected[f"{block}.stochastic_depth"] = expected[f"{block}.stochastic_depth2"] = prob * k / (n - 1.0)
                expected_shifts[f"{block}.attn"] = (0, 0) if i % 2 == 0 else (window // 2, window // 2)
                k += 1
        assert rates == expected and shifts == expected_shifts


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_swin_train_mode_equals_torchvision(v2):
    """A small Swin (width 16) against torchvision's SwinTransformer of the same settings:
    the same seed drops the same rows (two stochastic depth draws per block, in order)."""
    models = torchvision_models()
    if models is None:
        pytest.skip(NO_TORCHVISION)
    tv = models.swin_transformer
    settings = dict(embed_dim=16, depths=[2, 2, 2, 2], stochastic_depth_prob=0.5, num_classes=10)
    extra = dict(block=tv.SwinTransformerBlockV2, downsample_layer=tv.PatchMergingV2) if v2 else {}
    ref = tv.SwinTransformer(patch_size=[4, 4], num_heads=[1, 2, 4, 8], window_size=[8, 8] if v2 else [7, 7], **settings,
                             **extra).double()
    ours = compile_spec(ZOO["swin_v2_t" if v2 else "swin_t"], heads=[1, 2, 4, 8], **settings).double()
    x = torch.randn(4, 3, 64, 64, dtype=torch.float64)  # maps 16, 8, 4, 2: padded windows, shifts dropped at the end
    assert_modes_equal(ref, ours, x, seed=3)


@pytest.mark.parametrize("name,p", [
    ("efficientnet_b0", 0.2), ("efficientnet_b1", 0.2), ("efficientnet_b2", 0.3), ("efficientnet_b3", 0.3),
    ("efficientnet_b4", 0.4), ("efficientnet_b5", 0.4), ("efficientnet_b6", 0.5), ("efficientnet_b7", 0.5),
    ("efficientnet_v2_s", 0.2), ("efficientnet_v2_m", 0.3), ("efficientnet_v2_l", 0.4),
    ("mobilenet_v2", 0.2), ("mobilenet_v3_large", 0.2), ("mnasnet1_0", 0.2), ("squeezenet1_0", 0.5), ("vgg16", 0.5),
])
def test_classifier_dropout_as_torchvision(name, p):
    assert set(drop_rates(name, "dropout").values()) == {p}


def test_stochastic_depth_draws_one_bernoulli_per_row_like_torchvision():
    from archspec.layers import StochasticDepth

    layer = StochasticDepth(0.25, "row").train()
    x = torch.randn(64, 8, 3, 3, dtype=torch.float64)
    torch.manual_seed(7)
    out = layer(x)
    torch.manual_seed(7)
    mask = torch.empty(64, 1, 1, 1, dtype=torch.float64).bernoulli_(0.75)  # torchvision's draw, in its order
    assert torch.equal(out, x * (mask / 0.75))
    dropped = (out.flatten(1) == 0).all(1)
    assert 0 < int(dropped.sum()) < 64 and torch.allclose(out[~dropped], x[~dropped] / 0.75)
    assert layer.eval()(x) is x  # the identity in eval mode
    batch = StochasticDepth(0.5, "batch").train()
    torch.manual_seed(0)
    outs = [batch(x) for _ in range(20)]
    assert all(o.abs().sum() == 0 or torch.equal(o, x * 2) for o in outs)  # all rows or none
    assert any(o.abs().sum() == 0 for o in outs) and any(o.abs().sum() > 0 for o in outs)


@pytest.mark.parametrize("name", ["efficientnet_b0", "convnext_tiny"])
def test_train_mode_equals_torchvision(name):
    """With torchvision's model code installed (shared/tools/install-reference-models.sh),
    the same seed drops the same rows: train-mode outputs are equal."""
    models = torchvision_models()
    if models is None:
        pytest.skip(NO_TORCHVISION)
    ref = getattr(models, name)().double()
    ours = compile_spec(ZOO[name]).double()
    assert_modes_equal(ref, ours, torch.randn(4, 3, 64, 64, dtype=torch.float64), seed=3)


# ---------------------------------------------------------------------------------------
# width and depth rules are the spec's expressions


@pytest.mark.parametrize("name,overrides,params", [
    # torchvision's own models at these widths (mobilenet_v2(width_mult=...), mobilenet_v3_large(width_mult=...))
    ("mobilenet_v2", {"width_mult": 0.75}, 2_636_424),
    ("mobilenet_v2", {"width_mult": 0.5}, 1_968_680),
    ("mobilenet_v3_large", {"width_mult": 0.75}, 3_377_576),
    ("mobilenet_v3_large", {"width_mult": 0.5}, 1_734_576),
    # B3 is B0 scaled by 1.2 in width and 1.4 in depth; MNASNet 0.5 is alpha 0.5;
    # RegNetY-800MF is another point of the same design space
    ("efficientnet_b0", {"width_mult": 1.2, "depth_mult": 1.4}, 12_233_232),
    ("mnasnet1_0", {"alpha": 0.5}, 2_218_512),
    ("regnet_y_400mf", {"depth": 14, "w_0": 56, "w_a": 38.84, "w_m": 2.4, "group_width": 16}, 6_432_512),
    ("resnet50", {"layers": [3, 4, 23, 3]}, 44_549_160),
    ("convnext_tiny", {"stages": [[128, 3], [256, 3], [512, 27], [1024, 3]]}, 88_591_464),
])
def test_overrides_make_the_variant_a_user_expects(name, overrides, params):
    assert totals(load_spec(ZOO[name], **overrides)).params == params


def test_regnet_stages_are_computed_from_the_design_space():
    graph = load_spec(ZOO["regnet_x_400mf"])
    stages = [c for c in graph.containers if c.count(".") == 1 and c.startswith("trunk_output.block")]
    blocks = {s: len(graph.containers[s].children) for s in stages}
    # torchvision: depths [1, 2, 7, 12] and widths [32, 64, 160, 400] for RegNetX-400MF
    assert blocks == {"trunk_output.block1": 1, "trunk_output.block2": 2, "trunk_output.block3": 7, "trunk_output.block4": 12}
    widths = [graph.containers[s].shape[0] for s in stages]
    assert widths == [32, 64, 160, 400]


# ---------------------------------------------------------------------------------------
# one representative per family: forward, backward, fx, TorchScript, initialisation

REPRESENTATIVES = {
    "resnet": "resnext50_32x4d", "vgg": "vgg11_bn", "squeezenet": "squeezenet1_1", "mobilenet": "mobilenet_v3_small",
    "mnasnet": "mnasnet0_5", "shufflenet": "shufflenet_v2_x0_5", "efficientnet": "efficientnet_v2_s",
    "regnet": "regnet_y_400mf", "convnext": "convnext_tiny", "swin": "swin_t",
}


@pytest.fixture(scope="module")
def representative():
    cache: dict[str, torch.nn.Module] = {}

    def get(name: str) -> torch.nn.Module:
        if name not in cache:
            cache.clear()  # one network in memory at a time
            torch.manual_seed(0)
            cache[name] = compile_spec(ZOO[name])
        return cache[name]

    return get


@pytest.mark.parametrize("family", sorted(REPRESENTATIVES))
def test_forward_backward_fx_and_torchscript(family, representative):
    model = representative(REPRESENTATIVES[family])
    x = torch.randn(2, 3, 64, 64)
    model.train()
    model(x).pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    model.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        eager = model(x)
        traced = torch.fx.symbolic_trace(model)(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(model)(x)
    assert torch.equal(traced, eager)
    assert torch.allclose(scripted, eager, rtol=1e-5, atol=1e-6)


def _std_close(t: torch.Tensor, std: float) -> bool:
    return abs(float(t.detach().float().std()) - std) <= 0.1 * std


def _fan(w: torch.Tensor) -> tuple[int, int]:
    receptive = math.prod(w.shape[2:])
    return w.shape[1] * receptive, w.shape[0] * receptive


#: each family's initialisation in torchvision: (conv weight std, linear weight std) as
#: functions of (fan_in, fan_out, out_features), and which biases start at 0 (conv, linear)
KAIMING_FAN_OUT = lambda fi, fo, o: math.sqrt(2 / fo)  # noqa: E731
DEFAULT_UNIFORM = lambda fi, fo, o: 1 / math.sqrt(fi) / math.sqrt(3)  # noqa: E731  (torch's default, kaiming_uniform a=sqrt(5))
INITS = {
    "resnet": (KAIMING_FAN_OUT, DEFAULT_UNIFORM, (False, False)),
    "vgg": (KAIMING_FAN_OUT, lambda fi, fo, o: 0.01, (True, True)),
    "squeezenet": (lambda fi, fo, o: math.sqrt(2 / fi), None, (True, True)),  # kaiming_uniform: bound sqrt(6 / fan_in)
    "mobilenet": (KAIMING_FAN_OUT, lambda fi, fo, o: 0.01, (True, True)),
    "mnasnet": (KAIMING_FAN_OUT, lambda fi, fo, o: math.sqrt(1 / fo), (True, True)),  # kaiming_uniform fan_out, sigmoid gain
    "shufflenet": (DEFAULT_UNIFORM, DEFAULT_UNIFORM, (False, False)),
    "efficientnet": (KAIMING_FAN_OUT, lambda fi, fo, o: 1 / math.sqrt(o) / math.sqrt(3), (True, True)),
    "regnet": (KAIMING_FAN_OUT, lambda fi, fo, o: 0.01, (False, True)),
    "convnext": (lambda fi, fo, o: 0.02, lambda fi, fo, o: 0.02, (True, True)),  # trunc_normal(std 0.02) cut at +-2: a normal in effect
    # every Linear, the attention's qkv and proj included, trunc_normal(std 0.02) and bias 0; the patch embedding's default
    "swin": (DEFAULT_UNIFORM, lambda fi, fo, o: 0.02, (False, True)),
}


@pytest.mark.parametrize("family", sorted(REPRESENTATIVES))
def test_default_initialisation_is_the_reference(family, representative):
    model = representative(REPRESENTATIVES[family])
    conv_std, linear_std, zero_bias = INITS[family]
    checked = 0
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
            assert module.weight.eq(1).all() and module.bias.eq(0).all(), name
            continue
        if not isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) or weight.numel() < 2000:
            continue
        fan_in, fan_out = _fan(weight) if weight.dim() > 2 else (weight.shape[1], weight.shape[0])
        rule = conv_std if isinstance(module, torch.nn.Conv2d) else linear_std
        if family == "squeezenet" and name == "classifier.1":
            rule = lambda fi, fo, o: 0.01  # noqa: E731  (the final convolution)
        if rule is not None:
            assert _std_close(weight, rule(fan_in, fan_out, weight.shape[0])), (name, float(weight.std()))
            checked += 1
        if zero_bias[isinstance(module, torch.nn.Linear)] and module.bias is not None:
            assert module.bias.eq(0).all(), name
    assert checked >= 5
    if family == "convnext":
        scales = [p for n, p in model.named_parameters() if n.endswith("layer_scale")]
        assert len(scales) == 18 and all(p.eq(1e-6).all() and p.shape[1:] == (1, 1) for p in scales)
    if family == "swin":  # the bias tables as the attention module makes them; the index computed
        from archspec.layers import WindowAttention, relative_position_index

        attns = [m for m in model.modules() if isinstance(m, WindowAttention)]
        assert len(attns) == 12
        assert all(torch.equal(m.relative_position_index, relative_position_index([7, 7])) for m in attns)
        assert all(_std_close(m.relative_position_bias_table, 0.02) for m in attns[-4:])  # 169 x 12 or 24 values
