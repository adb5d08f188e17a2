"""lumina_hal.torch (docs/torch.md): LuminaLinear, its custom op, the noise model, replacement."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from lumina_hal.errors import ConfigurationError, InputError, LuminaError  # noqa: E402
from lumina_hal.metrics import snr_db  # noqa: E402
from lumina_hal.tiling import TiledDevice  # noqa: E402
from lumina_hal.torch import (  # noqa: E402
    ChipGeometry,
    LuminaLinear,
    NoiseModel,
    chip_model,
    replace_linear_layers,
)

IDEAL_64 = "mock://?rows=64&cols=64&preset=ideal&seed=1"
TYPICAL_32 = "mock://?rows=32&cols=32&preset=typical&seed=1"


def _snr(a, b) -> float:
    return snr_db(a.detach().float().numpy(), b.detach().float().numpy())


def test_layer_larger_than_the_array_matches_nn_linear_to_60_db():
    torch.manual_seed(0)
    linear = torch.nn.Linear(200, 300)
    layer = LuminaLinear.from_linear(linear, chip=IDEAL_64)
    x = torch.randn(4, 5, 200)
    y = layer(x)
    assert y.shape == (4, 5, 300)
    assert _snr(y, linear(x)) >= 60.0
    assert layer.chip_runner().tiled.plan.n_tiles == 20
    layer.close()


@pytest.mark.parametrize("mode", ["ideal", "chip"])
def test_gradients_agree_with_nn_linear(mode):
    torch.manual_seed(1)
    linear = torch.nn.Linear(70, 40)
    layer = LuminaLinear(70, 40, chip=IDEAL_64, mode=mode)
    with torch.no_grad():
        layer.weight.copy_(linear.weight)
        layer.bias.copy_(linear.bias)
    x1 = torch.randn(3, 6, 70, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    (layer(x1) ** 2).sum().backward()
    (linear(x2) ** 2).sum().backward()
    rtol = 1e-6 if mode == "ideal" else 1e-4  # chip: the upstream gradient carries its error
    torch.testing.assert_close(x1.grad, x2.grad, rtol=rtol, atol=1e-4)
    torch.testing.assert_close(layer.weight.grad, linear.weight.grad, rtol=rtol, atol=1e-3)
    torch.testing.assert_close(layer.bias.grad, linear.bias.grad, rtol=rtol, atol=1e-3)
    layer.close()


def test_chip_backward_is_straight_through_exactly():
    torch.manual_seed(2)
    layer = LuminaLinear(20, 10, chip=TYPICAL_32)
    x = torch.randn(5, 20, requires_grad=True)
    g = torch.randn(5, 10)
    layer(x).backward(g)
    torch.testing.assert_close(x.grad, g @ layer.weight.detach())
    torch.testing.assert_close(layer.weight.grad, g.T @ x.detach())
    layer.close()


def test_weights_are_programmed_again_only_when_they_change():
    torch.manual_seed(3)
    layer = LuminaLinear(30, 20, chip=TYPICAL_32)
    x = torch.randn(8, 30)
    for _ in range(3):
        layer(x)
    runner = layer.chip_runner()
    assert runner.programs == 1
    with torch.inference_mode():
        layer(x)
    assert runner.programs == 1
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer(x).sum().backward()
    opt.step()  # in-place update: the version counter moves
    y = layer(x)
    assert runner.programs == 2
    assert _snr(y, x @ layer.weight.detach().T + layer.bias.detach()) > 40
    layer.close()


def test_compiled_layer_runs_the_custom_op_without_graph_breaks():
    torch.manual_seed(4)
    layer = LuminaLinear(40, 24, chip=TYPICAL_32)
    x = torch.randn(6, 40, requires_grad=True)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    y = compiled(x)
    y.sum().backward()
    assert _snr(y, x @ layer.weight.detach().T + layer.bias.detach()) > 40
    torch.testing.assert_close(x.grad, torch.ones(6, 24) @ layer.weight.detach())
    explanation = torch._dynamo.explain(layer)(x)
    assert explanation.graph_break_count == 0
    layer.close()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", ["chip", "noise_model", "ideal"])
def test_input_dtypes_come_back_as_they_went_in(dtype, mode):
    layer = LuminaLinear(16, 8, chip=TYPICAL_32, mode=mode)
    x = torch.randn(2, 3, 16).to(dtype)
    y = layer(x)
    assert y.dtype == dtype and y.shape == (2, 3, 8)
    reference = x.float() @ layer.weight.detach().T + layer.bias.detach()
    assert _snr(y, reference) > {torch.float32: 40, torch.float16: 35, torch.bfloat16: 25}[dtype]
    layer.close()


def test_noise_model_reproduces_the_twin_without_noise():
    """Same serial, noise off: the model's output equals the chip's up to rounding ties."""
    rng = np.random.default_rng(5)
    w = rng.uniform(-1, 1, (40, 50))
    x = rng.uniform(-1, 1, (64, 50)).astype(np.float32)
    ideal = x.astype(np.float64) @ w.T
    uri = "mock://?rows=32&cols=64&preset=harsh&noise=false&kernel=reference&seed=1"
    with TiledDevice(uri) as chip:
        chip.load_weights(w)
        y_chip = chip.matmul(x)
    physics, geometry = chip_model(uri)
    model = NoiseModel(40, 50, physics, geometry)
    y_model = model(torch.tensor(x), torch.tensor(w, dtype=torch.float32)).numpy()
    assert snr_db(y_model, y_chip) > snr_db(y_chip, ideal) + 6.0
    assert np.mean(np.isclose(y_model, y_chip, atol=1e-5)) > 0.9


def test_noise_model_snr_matches_the_noisy_chip():
    rng = np.random.default_rng(6)
    w = rng.uniform(-1, 1, (64, 64))
    x = rng.uniform(-1, 1, (512, 64)).astype(np.float32)
    ideal = x.astype(np.float64) @ w.T
    for preset, target in (("typical", 51.87), ("harsh", 43.63)):
        physics, geometry = chip_model(f"mock://?preset={preset}")
        model = NoiseModel(64, 64, physics, dataclasses.replace(geometry, serial=None))
        got = snr_db(model(torch.tensor(x), torch.tensor(w, dtype=torch.float32)).numpy(), ideal)
        assert abs(got - target) < 1.0, (preset, got)


def test_noise_model_weight_gradient_is_the_derivative_at_fixed_errors():
    """Independent float64 reference of W~(W) = W cos(δ/2) - s σRC sin(δ/2) sqrt(1 - t²)."""
    physics, geometry = chip_model("mock://?rows=8&cols=8&preset=harsh&weight_bits=4&fab_sigma=0.1")
    model = NoiseModel(8, 8, physics, geometry)
    torch.manual_seed(7)
    w = torch.randn(8, 8, dtype=torch.float32, requires_grad=True)
    w_tilde, _, scale = model.effective_weights(w)
    g = torch.randn(8, 8)
    (w_tilde * g).sum().backward()
    _, cos_half, side, _ = model.static_errors(model.blocks.pad_weights(w.detach()))
    w64, s = w.detach().double().numpy(), float(scale.flatten()[0])
    env = model.envelope.reshape(8, 8).double().numpy()
    t = np.abs(w64) / (s * env)
    d_root = -t / np.sqrt(np.clip(1 - t * t, 1e-12, None)) * np.sign(w64) / (s * env)
    expected = (
        cos_half.reshape(8, 8).double().numpy() - s * side.reshape(8, 8).double().numpy() * d_root
    )
    np.testing.assert_allclose(
        w.grad.double().numpy(), expected * g.double().numpy(), rtol=2e-3, atol=1e-5
    )


def test_noise_model_slope_is_the_autograd_derivative_of_the_heater_law():
    """linearize's closed-form slope G = dW~/dW equals autograd through effective_weights."""
    uri = "mock://?rows=16&cols=8&preset=harsh&weight_bits=4&fab_sigma=0.1&serial=S1"
    physics, geometry = chip_model(uri)
    model = NoiseModel(20, 12, physics, geometry)  # 2 x 2 tiles, padded
    torch.manual_seed(11)
    w = torch.randn(20, 12, requires_grad=True)
    w_tilde, _, _ = model.effective_weights(w)
    w_tilde[:20, :12].sum().backward()
    lin = model.linearize(w.detach())
    torch.testing.assert_close(lin.slope, w.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        torch.addcmul(lin.offset, lin.slope, w.detach()), w_tilde.detach()[:20, :12]
    )


def test_noise_model_gradient_is_slope_times_the_linear_gradient():
    """dL/dW = (gᵀ x~) ⊙ G and dL/dx = g W~ at the drawn errors (docs/torch.md section 3)."""
    uri = "mock://?rows=16&cols=8&preset=harsh&weight_bits=4&input_bits=4&serial=S2"
    physics, geometry = chip_model(uri)
    model = NoiseModel(20, 12, physics, geometry)
    torch.manual_seed(12)
    w = torch.randn(20, 12, requires_grad=True)
    x = torch.randn(5, 12, requires_grad=True)
    g = torch.randn(5, 20)
    model(x, w).backward(g)
    lin = model.linearize(w.detach())
    w_tilde = torch.addcmul(lin.offset, lin.slope, w.detach())
    _, x_q = model.chip_output(x.detach(), w_tilde, lin)
    torch.testing.assert_close(w.grad, (g.T @ x_q) * lin.slope)
    torch.testing.assert_close(x.grad, g @ w_tilde)


def test_noise_model_draws_static_errors_every_refresh_every_calls():
    uri = "mock://?rows=16&cols=16&preset=harsh&noise=false"
    physics, geometry = chip_model(uri)
    model = NoiseModel(16, 16, physics, dataclasses.replace(geometry, serial=None),
                       generator=torch.Generator().manual_seed(3), refresh_every=3)  # fmt: skip
    torch.manual_seed(13)
    w, x = torch.randn(16, 16), torch.randn(8, 16)
    outputs = [model(x, w) for _ in range(4)]
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    torch.testing.assert_close(outputs[0], outputs[2], rtol=0, atol=0)
    assert not torch.equal(outputs[0], outputs[3])  # a new chip drawn at the 4th call
    with pytest.raises(ConfigurationError):
        NoiseModel(16, 16, physics, geometry, refresh_every=0)


def test_noise_model_gradient_equals_nn_linear_on_an_ideal_chip():
    torch.manual_seed(8)
    layer = LuminaLinear(
        48, 20, chip="mock://?rows=16&cols=16&preset=ideal&noise=false", mode="noise_model"
    )
    linear = torch.nn.Linear(48, 20)
    with torch.no_grad():
        linear.weight.copy_(layer.weight)
        linear.bias.copy_(layer.bias)
    x1 = torch.randn(7, 48, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    layer(x1).square().sum().backward()
    linear(x2).square().sum().backward()
    torch.testing.assert_close(layer.weight.grad, linear.weight.grad, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-3, atol=1e-3)


def _mlp() -> torch.nn.Module:
    torch.manual_seed(9)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 96), torch.nn.ReLU(), torch.nn.Linear(96, 96), torch.nn.ReLU(),
        torch.nn.Linear(96, 10),
    )  # fmt: skip


def test_replace_linear_layers_on_an_mlp_keeps_outputs_close_and_restores():
    model = _mlp()
    x = torch.randn(16, 64)
    expected = model(x).detach()
    model, replacement = replace_linear_layers(model, chip=TYPICAL_32, exclude=["4"])
    assert sorted(replacement.layers) == ["0", "2"]
    assert isinstance(model[0], LuminaLinear) and type(model[4]) is torch.nn.Linear
    assert model[0].weight is replacement._originals[0][2].weight  # shared, not copied
    assert _snr(model(x), expected) > 35
    replacement.set_mode("ideal")
    torch.testing.assert_close(model(x), expected)
    restored = replacement()
    assert all(type(m) is not LuminaLinear for m in restored.modules())
    torch.testing.assert_close(restored(x), expected)


def test_replace_linear_layers_on_a_small_llama_keeps_logits_close():
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=256, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(10)
    model = transformers.LlamaForCausalLM(config).eval()
    ids = torch.randint(0, 256, (2, 12))
    with torch.inference_mode():
        expected = model(ids).logits
    model, replacement = replace_linear_layers(model, chip="mock://?rows=64&cols=64&preset=typical")
    assert "lm_head" in replacement.layers and len(replacement.layers) == 2 * 7 + 1
    with torch.inference_mode():
        got = model(ids).logits
    assert _snr(got, expected) > 25
    replacement()
    with torch.inference_mode():
        torch.testing.assert_close(model(ids).logits, expected)


def test_bad_arguments_raise_lumina_errors():
    with pytest.raises(ConfigurationError):
        LuminaLinear(4, 4, mode="fast")
    with pytest.raises(ConfigurationError):
        LuminaLinear(0, 4)
    layer = LuminaLinear(4, 4, chip=TYPICAL_32, mode="ideal")
    with pytest.raises(InputError):
        layer(torch.ones(3, 5))
    with pytest.raises(ConfigurationError):
        chip_model("fpga+tcp://127.0.0.1:5555")
    with pytest.raises(ConfigurationError):
        replace_linear_layers(_mlp(), mode="nope")


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(st.integers(-2, 40), st.text(max_size=3), st.none()),
    st.one_of(st.integers(-2, 40), st.floats(allow_nan=True)),
    st.sampled_from(["chip", "noise_model", "ideal", "x", ""]),
    st.sampled_from(["random", "chip", "bogus"]),
)
def test_construction_succeeds_or_raises_configuration_error(inf, outf, mode, serial):
    try:
        layer = LuminaLinear(inf, outf, chip=TYPICAL_32, mode=mode, noise_serial=serial)
    except LuminaError as exc:
        assert isinstance(exc, ConfigurationError)
        return
    y = layer(torch.ones(2, inf))
    assert y.shape == (2, outf)
    layer.close()


def test_geometry_and_physics_come_from_the_chip():
    physics, geometry = chip_model("fpga+sim://?rows=12&cols=20&preset=harsh&seed=3&timeout=1")
    assert (geometry.rows, geometry.cols) == (12, 20) and physics.output_bits == 10
    assert geometry == ChipGeometry(12, 20, "TWIN-0000000000000003")
