"""Our DDPM and DDIM steps against diffusers' schedulers, a trusted reference, on the same inputs."""

import pytest
import torch

from diffusionlab.samplers import SAMPLERS, ddim_invert, ddim_step, ddim_timesteps, ddpm_step, sample, step
from diffusionlab.schedules import NoiseSchedule

diffusers = pytest.importorskip("diffusers")

DIFFUSERS_SCHEDULE = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


def _inputs(seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(4, 1, 28, 28, generator=g, dtype=dtype), torch.randn(4, 1, 28, 28, generator=g, dtype=dtype) * 0.9)


def _in_double(ref, ours):
    """diffusers keeps its tables in float32; give it ours in float64 so both compute at full precision
    (the tables themselves are compared in test_schedules_match_diffusers)."""
    ref.betas, ref.alphas, ref.alphas_cumprod = ours.betas, ours.alphas, ours.alpha_bar
    ref.one = torch.tensor(1.0, dtype=torch.float64)
    if hasattr(ref, "final_alpha_cumprod"):
        ref.final_alpha_cumprod = ref.one
    return ref


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedules_match_diffusers(kind):
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=DIFFUSERS_SCHEDULE[kind])
    assert torch.allclose(NoiseSchedule(1000, kind).alpha_bar.float(), ref.alphas_cumprod, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("t", [999, 500, 37, 1, 0])
def test_ddpm_step_matches_diffusers(kind, t):
    ours = NoiseSchedule(1000, kind)
    ref = _in_double(diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=DIFFUSERS_SCHEDULE[kind],
                                             clip_sample=True, variance_type="fixed_small", prediction_type="epsilon"), ours)
    xt, eps = _inputs(dtype=torch.float64)
    expected = ref.step(eps, t, xt, generator=torch.Generator().manual_seed(7)).prev_sample
    got, _ = ddpm_step(ours, eps, t, t - 1, xt, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(got, expected, atol=1e-10), (got - expected).abs().max()


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("t", [999, 519, 19])
def test_ddim_step_matches_diffusers(kind, eta, t):
    ours = NoiseSchedule(1000, kind)
    ref = _in_double(diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule=DIFFUSERS_SCHEDULE[kind],
                                             clip_sample=True, set_alpha_to_one=True, timestep_spacing="trailing",
                                             prediction_type="epsilon"), ours)
    ref.set_timesteps(50)
    xt, eps = _inputs(1, dtype=torch.float64)
    noise = torch.randn(xt.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = ref.step(eps, t, xt, eta=eta, use_clipped_model_output=True, variance_noise=noise).prev_sample
    got, _ = ddim_step(ours, eps, t, t - 20, xt, eta=eta, noise=noise)
    assert torch.allclose(got, expected, atol=1e-10), (got - expected).abs().max()


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
@pytest.mark.parametrize("steps", [1, 10, 50, 1000])
def test_timesteps_match_diffusers(spacing, steps):
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
    ref.set_timesteps(steps)
    assert ddim_timesteps(1000, steps, spacing) == ref.timesteps.tolist()


def test_full_ddim_loop_matches_diffusers():
    """The whole loop, with a fixed smooth function standing in for the network."""
    ours = NoiseSchedule(1000, "cosine")
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=True,
                                  set_alpha_to_one=True, timestep_spacing="trailing")
    ref.set_timesteps(20)

    def eps_fn(x, t):
        return torch.tanh(x) * (t.float().view(-1, 1, 1, 1) / 1000)

    xT = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    x = xT.clone()
    for t in ref.timesteps:
        x = ref.step(eps_fn(x, t.expand(2)), t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    got = sample(eps_fn, xT.shape, ours, "ddim", steps=20, xT=xT, progress=False)
    assert torch.allclose(got, x.clamp(-1, 1), atol=1e-4)


def test_no_noise_at_last_ddpm_step():
    s = NoiseSchedule(1000)
    xt, eps = _inputs()
    a, _ = ddpm_step(s, eps, 0, -1, xt, generator=torch.Generator().manual_seed(1))
    b, _ = ddpm_step(s, eps, 0, -1, xt, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    c, _ = ddpm_step(s, eps, 1, 0, xt, generator=torch.Generator().manual_seed(1))
    d, _ = ddpm_step(s, eps, 1, 0, xt, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(c, d)


def test_last_step_returns_clean_x0_prediction():
    s = NoiseSchedule(1000)
    xt, eps = _inputs()
    x, x0 = ddim_step(s, eps, 19, -1, xt, eta=1.0)
    assert torch.allclose(x, x0, atol=1e-6)


def test_ddim_eta0_is_deterministic_and_seed_reproducible():
    s = NoiseSchedule(1000)
    eps_fn = lambda x, t: 0.5 * x
    x0 = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    a = sample(eps_fn, x0.shape, s, "ddim", steps=10, xT=x0, generator=torch.Generator().manual_seed(1), progress=False)
    b = sample(eps_fn, x0.shape, s, "ddim", steps=10, xT=x0, generator=torch.Generator().manual_seed(2), progress=False)
    assert torch.equal(a, b)
    c = sample(eps_fn, x0.shape, s, "ddpm", steps=10, generator=torch.Generator().manual_seed(5), progress=False)
    d = sample(eps_fn, x0.shape, s, "ddpm", steps=10, generator=torch.Generator().manual_seed(5), progress=False)
    assert torch.equal(c, d)


def test_trajectory_and_callback():
    s = NoiseSchedule(1000)
    seen = []
    x, traj = sample(lambda x, t: 0 * x, (1, 1, 28, 28), s, steps=5, return_trajectory=True, progress=False,
                     callback=lambda i, t, t_prev, x, x0: seen.append((t, t_prev)))
    assert traj["xt"].shape == (6, 1, 1, 28, 28) and traj["x0"].shape == (5, 1, 1, 28, 28)
    assert [t for t, _ in seen] == ddim_timesteps(1000, 5) and seen[-1][1] == -1


def test_bad_inputs():
    s = NoiseSchedule(1000)
    xt, eps = _inputs()
    with pytest.raises(ValueError, match="steps must be an integer from 1 to T=1000"):
        ddim_timesteps(1000, 0)
    with pytest.raises(ValueError, match="steps must be an integer from 1 to T=1000"):
        ddim_timesteps(1000, 1001)
    with pytest.raises(ValueError, match="spacing must be one of"):
        ddim_timesteps(1000, 10, "random")
    with pytest.raises(ValueError, match="eta must be between 0"):
        ddim_step(s, eps, 10, 5, xt, eta=1.5)
    with pytest.raises(ValueError, match="need 0 <= t < T"):
        ddpm_step(s, eps, 1000, 999, xt)
    with pytest.raises(ValueError, match="sampler must be one of"):
        sample(lambda x, t: x, (1, 1, 28, 28), s, sampler="euler")
    with pytest.raises(ValueError, match="start_step must be in 0..9"):
        sample(lambda x, t: x, (1, 1, 28, 28), s, steps=10, start_step=10)


def test_strided_ddpm_steps_match_diffusers():
    """DDPM that skips timesteps (t_prev = t - 20, 50 of 1000 steps), as diffusers' DDPMScheduler runs it."""
    ours = NoiseSchedule(1000, "cosine")
    ref = _in_double(diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                             clip_sample=True, variance_type="fixed_small", prediction_type="epsilon"), ours)
    ref.set_timesteps(50)
    assert ref.timesteps[0] == 980 and ref.timesteps[-1] == 0
    xt, eps = _inputs(2, dtype=torch.float64)
    for t in (980, 500, 20, 0):
        expected = ref.step(eps, t, xt, generator=torch.Generator().manual_seed(7)).prev_sample
        got, _ = ddpm_step(ours, eps, t, t - 20 if t > 0 else -1, xt, generator=torch.Generator().manual_seed(7))
        assert torch.allclose(got, expected, atol=1e-9), (t, (got - expected).abs().max())


# Gaussian data x0 ~ N(0, S^2 I): the exact noise predictor is E[eps | x_t] = sqrt(1 - ab) x_t / (ab S^2 + 1 - ab)
def gaussian_eps_fn(schedule, S, dtype=None):
    def eps_fn(x, t):
        ab = schedule.alpha_bar[t].to(x.dtype).view(-1, 1, 1, 1)
        eps = (1 - ab).sqrt() * x / (ab * S**2 + 1 - ab)
        return eps if dtype is None else eps.to(dtype)  # dtype: a network answering in bf16, say

    return eps_fn


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_clip_none_returns_the_data_range(sampler):
    """Data with standard deviation 3 lies mostly outside [-1, 1]: without clipping, the samples keep it."""
    s = NoiseSchedule(1000, "cosine")
    eps_fn = gaussian_eps_fn(s, 3.0)
    g = torch.Generator().manual_seed(0)
    x = sample(eps_fn, (4, 1, 28, 28), s, sampler, steps=50, generator=g, clip=None, progress=False)
    assert x.abs().max() > 5 and 2.7 < x.std() < 3.3, x.std()
    clipped = sample(eps_fn, (4, 1, 28, 28), s, sampler, steps=50, generator=torch.Generator().manual_seed(0),
                     progress=False)
    assert clipped.abs().max() <= 1  # the default, for images in [-1, 1]
    wider = sample(eps_fn, (4, 1, 28, 28), s, sampler, steps=50, generator=torch.Generator().manual_seed(0),
                   clip=2.0, progress=False)
    assert wider.abs().max() == 2


def test_diffusion_model_passes_its_clip(tiny_config):
    from diffusionlab.pipelines.pixel import DiffusionModel
    from diffusionlab.models.unet import UNet

    unet = UNet(tiny_config)
    torch.nn.init.normal_(unet.out[-1].weight, std=3.0)  # a network that predicts far outside the data range
    model = DiffusionModel("test", unet, NoiseSchedule(1000))
    kw = dict(labels=[1, 2], steps=3, generator=torch.Generator().manual_seed(0), progress=False)
    assert model.sample(2, **kw).abs().max() <= 1
    model.clip = None  # what a latent model will say
    assert model.sample(2, **kw).abs().max() > 1


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_bfloat16_start_and_network_give_the_float32_sample(sampler):
    """In bf16, alpha_bar_0 = 0.99996 rounds to 1; the sampler must compute in float32 whatever x_T's dtype."""
    s = NoiseSchedule(1000, "cosine")
    xT = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)).bfloat16()
    eta = 1.0 if sampler == "ddim" else 0.0  # ddpm takes no eta
    x16 = sample(gaussian_eps_fn(s, 0.5, torch.bfloat16), xT.shape, s, sampler, steps=1000, xT=xT, eta=eta,
                 generator=torch.Generator().manual_seed(1), progress=False)
    x32 = sample(gaussian_eps_fn(s, 0.5), xT.shape, s, sampler, steps=1000, xT=xT.float(), eta=eta,
                 generator=torch.Generator().manual_seed(1), progress=False)
    assert x16.dtype == torch.float32 and torch.isfinite(x16).all()
    assert (x16 - x32).abs().max() < 0.01, (x16 - x32).abs().max()  # measured: 2.5e-4


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("T", [2, 5, 10])
def test_small_T_samples_are_finite(kind, T):
    s = NoiseSchedule(T, kind)
    for sampler in SAMPLERS:
        x = sample(gaussian_eps_fn(s, 0.5), (2, 1, 8, 8), s, sampler, steps=T, eta=1.0 if sampler == "ddim" else 0.0,
                   generator=torch.Generator().manual_seed(0), progress=False)
        assert torch.isfinite(x).all()


def test_noise_and_generator_together_raise():
    s = NoiseSchedule(1000)
    xt, eps = _inputs()
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="either noise or generator, not both"):
        ddpm_step(s, eps, 10, 9, xt, generator=g, noise=torch.zeros_like(xt))
    with pytest.raises(ValueError, match="either noise or generator, not both"):
        ddim_step(s, eps, 10, 5, xt, eta=1.0, generator=g, noise=torch.zeros_like(xt))


@pytest.mark.parametrize("bad", [False, True, 0, -1.0, "1"])
def test_bad_clip(bad):
    with pytest.raises(ValueError, match="clip must be a positive bound"):
        sample(lambda x, t: x, (1, 1, 28, 28), NoiseSchedule(10), steps=2, clip=bad, progress=False)


@pytest.mark.parametrize("eta", [2.0, 1.0, 0.5])
def test_ddpm_refuses_an_eta_instead_of_ignoring_it(eta):
    """eta is DDIM's noise level; sampler="ddpm" used to run with any eta and ignore it."""
    s = NoiseSchedule(10)
    with pytest.raises(ValueError, match="eta is a DDIM setting"):
        sample(lambda x, t: 0 * x, (1, 1, 8, 8), s, sampler="ddpm", steps=2, eta=eta, progress=False)
    xt, eps = _inputs()
    with pytest.raises(ValueError, match="eta is a DDIM setting"):
        step("ddpm", NoiseSchedule(1000), eps, 10, 5, xt, eta=eta)
    sample(lambda x, t: 0 * x, (1, 1, 8, 8), s, sampler="ddpm", steps=2, progress=False)  # no eta: fine


def test_an_eps_of_another_shape_is_refused_not_broadcast():
    """An eps_fn answering (B, 1, H, W) for 4-channel latents (or one row for the batch) broadcast against x_t
    and gave a wrong sample without an error."""
    s = NoiseSchedule(10)
    xt = torch.randn(2, 4, 4, 4)
    for eps in (torch.randn(2, 1, 4, 4), torch.randn(1, 4, 4, 4)):
        for one_step in (ddim_step, ddpm_step):
            with pytest.raises(ValueError, match=r"eps must have the shape of x_t \(2, 4, 4, 4\)"):
                one_step(s, eps, 5, 3, xt)

    def wrong(x, t):  # one channel for 4-channel latents
        return torch.zeros(x.shape[0], 1, 4, 4)

    with pytest.raises(ValueError, match="eps must have the shape"):
        sample(wrong, (2, 4, 4, 4), s, steps=3, progress=False)
    with pytest.raises(ValueError, match="eps must have the shape"):
        ddim_invert(wrong, torch.zeros(2, 4, 4, 4), s, steps=3)


def test_a_shape_that_disagrees_with_xT_is_refused():
    """sample(eps_fn, (16, 1, 28, 28), ..., xT=x of 8 images) used to return 8 samples, shape ignored."""
    s = NoiseSchedule(10)
    xT = torch.randn(8, 1, 4, 4)
    with pytest.raises(ValueError, match=r"xT has shape \(8, 1, 4, 4\) but shape is \(16, 1, 4, 4\)"):
        sample(lambda x, t: 0 * x, (16, 1, 4, 4), s, steps=2, xT=xT, progress=False)
    for shape in (None, (8, 1, 4, 4), torch.Size([8, 1, 4, 4])):  # no shape, or xT's own: fine
        assert sample(lambda x, t: 0 * x, shape, s, steps=2, xT=xT, progress=False).shape == xT.shape


@pytest.mark.parametrize("prediction, diffusers_name", [("v", "v_prediction"), ("x0", "sample")])
@pytest.mark.parametrize("t", [999, 519, 19])
def test_v_and_x0_models_step_as_diffusers_does(prediction, diffusers_name, t):
    """A v- or x0-predicting network, read as eps by `guidance.output_to_eps` (eq. 4 inverted), then one DDIM
    step: the same as diffusers' DDIMScheduler with prediction_type v_prediction / sample (Salimans & Ho 2022)."""
    from diffusionlab.guidance import output_to_eps

    ours = NoiseSchedule(1000, "cosine")
    ref = _in_double(diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                             clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing",
                                             prediction_type=diffusers_name), ours)
    ref.set_timesteps(50)
    xt, out = _inputs(2, dtype=torch.float64)
    expected = ref.step(out, t, xt, eta=0.0).prev_sample
    eps = output_to_eps(ours, prediction, out, xt, torch.full((len(xt),), t))
    got, _ = ddim_step(ours, eps, t, t - 20, xt, clip=None)
    assert torch.allclose(got, expected, atol=1e-10), (got - expected).abs().max()
