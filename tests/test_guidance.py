import pytest
import torch

from diffusionlab.guidance import cfg_combine, drop_labels, guided_eps
from diffusionlab.schedules import NoiseSchedule
from diffusionlab.models.unet import UNet


@pytest.fixture
def model(tiny_config):
    m = UNet(tiny_config).eval()
    torch.nn.init.normal_(m.out[-1].weight, std=0.1)
    return m


def test_scale_one_equals_conditional_prediction(model):
    s = NoiseSchedule(1000)
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([10, 500, 900]), torch.tensor([1, 4, 7])
    with torch.no_grad():
        assert torch.allclose(guided_eps(model, s, "eps", y, 1.0)(x, t), model(x, t, y), atol=1e-6)


def test_guidance_formula_and_negative_class(model):
    s = NoiseSchedule(1000)
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([10, 500, 900]), torch.tensor([1, 4, 7])
    neg = torch.tensor([2, 2, 2])
    with torch.no_grad():
        cond, uncond, negative = model(x, t, y), model(x, t, torch.full_like(y, 10)), model(x, t, neg)
        assert torch.allclose(guided_eps(model, s, "eps", y, 3.0)(x, t), uncond + 3 * (cond - uncond), atol=1e-5)
        assert torch.allclose(guided_eps(model, s, "eps", y, 3.0, neg)(x, t), negative + 3 * (cond - negative), atol=1e-5)
        assert torch.allclose(guided_eps(model, s, "eps", y, 0.0)(x, t), uncond, atol=1e-5)


def test_cfg_combine():
    assert torch.equal(cfg_combine(torch.tensor(1.0), torch.tensor(3.0), 2.0), torch.tensor(5.0))


def test_drop_labels_rate():
    y = torch.zeros(100000, dtype=torch.long)
    dropped = drop_labels(y, 0.1, 10, torch.Generator().manual_seed(0))
    assert abs((dropped == 10).float().mean().item() - 0.1) < 0.005
    assert set(dropped.unique().tolist()) == {0, 10}


@pytest.mark.parametrize("bad", [-1, 25, float("nan"), "3"])
def test_bad_guidance_scale(model, bad):
    with pytest.raises(ValueError, match="guidance_scale must be a number from 0 to 20"):
        guided_eps(model, NoiseSchedule(10), "eps", torch.tensor([1]), bad)


def test_labels_for_unconditional_model():
    from diffusionlab.models.unet import UNetConfig

    m = UNet(UNetConfig(channels=(8, 16), attention=(False, False)))
    with pytest.raises(ValueError, match="not class-conditioned"):
        guided_eps(m, NoiseSchedule(10), "eps", torch.tensor([1]), 2.0)


def test_negative_class_without_y_guides_away_from_it(model):
    """Without y the positive term is the unconditional prediction: eps_neg + w (eps_uncond - eps_neg)."""
    s = NoiseSchedule(1000)
    x, t, neg = torch.randn(3, 1, 28, 28), torch.tensor([10, 500, 900]), torch.tensor([2, 2, 2])
    with torch.no_grad():
        uncond, negative = model(x, t, torch.full_like(neg, 10)), model(x, t, neg)
        got = guided_eps(model, s, "eps", None, 3.0, neg)(x, t)
        assert torch.allclose(got, negative + 3 * (uncond - negative), atol=1e-5)
        assert not torch.allclose(got, uncond, atol=1e-3)  # not silently unconditional
        assert torch.allclose(guided_eps(model, s, "eps", None, 3.0)(x, t), uncond, atol=1e-6)


@pytest.mark.parametrize("prediction", ["v", "x0"])
def test_v_and_x0_predictions_are_converted_to_eps(model, prediction):
    """The model's output read as v or x0, converted with eq. 4 written out here, then guided."""
    s = NoiseSchedule(1000)
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([10, 500, 900]), torch.tensor([1, 4, 7])
    ab = s.alpha_bar[t].float().view(-1, 1, 1, 1)

    def to_eps(out):
        if prediction == "v":  # v = sqrt(ab) eps - sqrt(1 - ab) x0
            return (1 - ab).sqrt() * x + ab.sqrt() * out
        return (x - ab.sqrt() * out) / (1 - ab).sqrt()  # out is x0

    with torch.no_grad():
        cond, uncond = to_eps(model(x, t, y)), to_eps(model(x, t, torch.full_like(y, 10)))
        assert torch.allclose(guided_eps(model, s, prediction, y, 1.0)(x, t), cond, atol=1e-4)
        assert torch.allclose(guided_eps(model, s, prediction, y, 2.5)(x, t), uncond + 2.5 * (cond - uncond), atol=1e-4)


def test_sample_says_what_is_wrong_with_negative_labels_of_the_wrong_length():
    from diffusionlab import course

    model = course.load("cond")
    with pytest.raises(ValueError, match=r"negative_labels must be one class or 4 classes, got 2"):
        model.sample(4, [1, 2, 3, 4], negative_labels=[8, 9], steps=1, progress=False)
    for negative in (8, [8], [5, 6, 7, 8]):  # one class for all, or one per image
        x = model.sample(4, [1, 2, 3, 4], negative_labels=negative, steps=1, progress=False)
        assert x.shape == (4, 1, 28, 28)


def test_an_unknown_prediction_is_refused_when_the_eps_fn_is_made(model):
    """The eps_fns checked `prediction` only at their first call, inside the sampling loop."""
    from diffusionlab.guidance import text_guided_eps

    schedule = NoiseSchedule(10)
    with pytest.raises(ValueError, match="prediction .* must be one of"):
        guided_eps(model, schedule, "epsilon")
    with pytest.raises(ValueError, match="prediction .* must be one of"):
        text_guided_eps(model, schedule, "score", torch.zeros(1, 2, 3), torch.zeros(1, 2, 3))


def test_drop_labels_refuses_a_probability_outside_0_1():
    """p_uncond = 1.5 dropped every label without a word."""
    with pytest.raises(ValueError, match="p_uncond"):
        drop_labels(torch.tensor([1, 2, 3]), 1.5, 10)


def test_output_to_eps_keeps_float64():
    """out.float() rounded a float64 network's answer to float32 (an error of 1e-7 in eps) although the samplers
    compute in float64 for float64 inputs; bf16 answers still come back in float32."""
    from diffusionlab.guidance import output_to_eps

    s = NoiseSchedule(1000)
    g = torch.Generator().manual_seed(0)
    xt, v = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64), torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    a = s.alpha_bar[19]
    eps = output_to_eps(s, "v", v, xt, torch.tensor([19, 19]))
    assert eps.dtype == torch.float64
    torch.testing.assert_close(eps, (1 - a).sqrt() * xt + a.sqrt() * v, atol=1e-14, rtol=0)
    assert output_to_eps(s, "eps", v.bfloat16(), xt.float(), torch.tensor([19, 19])).dtype == torch.float32
