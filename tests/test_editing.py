"""Editing (lesson 6): SDEdit, inpainting, visual anagrams and hybrid images."""

import pytest
import torch

from diffusionlab import editing, samplers
from diffusionlab.schedules import NoiseSchedule
from diffusionlab.utils import make_generator

SCHEDULE = NoiseSchedule(1000, "cosine")


def images(seed=0, n=3):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def oracle_eps_fn(target):
    """The exact eps when the data is the single image `target`: x_t = sqrt(ab) target + sqrt(1 - ab) eps."""
    def eps_fn(xt, t):
        ab = SCHEDULE.alpha_bar[t].to(xt.dtype).view(-1, 1, 1, 1)
        return (xt - ab.sqrt() * target) / (1 - ab).sqrt()
    return eps_fn


def random_eps_fn(seed):
    """A fixed, input-dependent stand-in for a network: eps = tanh(w * x_t + b(t))."""
    w = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    return lambda xt, t: torch.tanh(w * xt + t.view(-1, 1, 1, 1) / 1000)


def counting(eps_fn):
    calls = []

    def fn(xt, t):
        calls.append(int(t[0]))
        return eps_fn(xt, t)
    return fn, calls


# --- SDEdit ---


def test_sdedit_with_strength_0_returns_the_input():
    x0 = images()
    fn, calls = counting(random_eps_fn(0))
    out = editing.sdedit(fn, x0, SCHEDULE, strength=0.0, steps=20)
    assert torch.equal(out, x0) and not calls


def test_sdedit_start_at_strength_0_returns_a_copy_of_the_input():
    x0 = images()
    xt, start = editing.sdedit_start(SCHEDULE, x0, 0.0, steps=20)
    assert start == 20 and torch.equal(xt, x0) and xt.data_ptr() != x0.data_ptr()  # a new tensor: x0 is safe


@pytest.mark.parametrize("strength, n_run", [(0.02, 0), (0.05, 1), (0.5, 10), (0.7, 14), (1.0, 20)])
def test_sdedit_runs_the_last_strength_fraction_of_the_steps(strength, n_run):
    fn, calls = counting(random_eps_fn(0))
    editing.sdedit(fn, images(), SCHEDULE, strength=strength, steps=20)
    assert calls == samplers.ddim_timesteps(1000, 20)[20 - n_run:]


def test_sdedit_start_noises_to_the_first_timestep_it_runs():
    x0 = images(n=2)
    xt, start = editing.sdedit_start(SCHEDULE, x0, 0.5, steps=10, generator=make_generator(3))
    t = samplers.ddim_timesteps(1000, 10)[start]
    eps = torch.randn(x0.shape, generator=make_generator(3))
    assert start == 5 and torch.allclose(xt, SCHEDULE.q_sample(x0, torch.full((2,), t), eps))


def test_sdedit_with_an_exact_model_returns_its_image():
    """If the data is one image, every start leads back to it: SDEdit's noise level and sampler agree."""
    target = images(seed=1, n=1)
    for strength in (0.3, 0.8, 1.0):
        out = editing.sdedit(oracle_eps_fn(target), images(seed=2, n=1), SCHEDULE, strength, steps=25,
                             generator=make_generator(0))
        assert torch.allclose(out, target.clamp(-1, 1), atol=1e-4)


def test_sdedit_is_reproducible_and_low_strength_stays_close():
    fn = random_eps_fn(0)
    x0 = images()
    a = editing.sdedit(fn, x0, SCHEDULE, 0.3, steps=20, generator=make_generator(5))
    b = editing.sdedit(fn, x0, SCHEDULE, 0.3, steps=20, generator=make_generator(5))
    far = editing.sdedit(fn, x0, SCHEDULE, 1.0, steps=20, generator=make_generator(5))
    assert torch.equal(a, b)
    assert (a - x0).abs().mean() < (far - x0).abs().mean()


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), "half"])
def test_sdedit_rejects_a_bad_strength(strength):
    with pytest.raises(ValueError, match="strength must be a number from 0"):
        editing.sdedit(random_eps_fn(0), images(), SCHEDULE, strength)


def test_sdedit_rejects_a_single_image_without_batch_axis():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*x\[None\]"):
        editing.sdedit(random_eps_fn(0), images()[0], SCHEDULE, 0.5)


# --- Inpainting ---


def test_inpainting_with_a_full_mask_is_plain_sampling():
    fn = random_eps_fn(1)
    x_known = images()
    painted = editing.inpaint(fn, x_known, editing.make_mask("all"), SCHEDULE, steps=20, generator=make_generator(7))
    plain = samplers.sample(fn, x_known.shape, SCHEDULE, steps=20, generator=make_generator(7), progress=False)
    assert torch.equal(painted, plain)


def test_inpainting_with_an_empty_mask_returns_the_image():
    x_known = images()
    out = editing.inpaint(random_eps_fn(1), x_known, editing.make_mask("none"), SCHEDULE, steps=10,
                          generator=make_generator(0))
    assert torch.equal(out, x_known)


@pytest.mark.parametrize("sampler, resample", [("ddim", 1), ("ddpm", 1), ("ddpm", 3)])
def test_inpainting_keeps_the_known_region_and_paints_the_rest(sampler, resample):
    x_known = images()
    mask = editing.make_mask("top")
    fn, calls = counting(random_eps_fn(2))
    out = editing.inpaint(fn, x_known, mask, SCHEDULE, steps=10, sampler=sampler, resample=resample,
                          generator=make_generator(0))
    keep = mask == 0
    assert torch.equal(out[keep.expand_as(out)], x_known[keep.expand_as(x_known)])
    assert not torch.allclose(out[..., :14, :], x_known[..., :14, :], atol=0.1)
    assert len(calls) == 9 * resample + 1  # every step but the last is redone `resample` times


def test_inpainting_with_an_exact_model_fills_in_its_image():
    target = images(seed=4, n=1)
    out = editing.inpaint(oracle_eps_fn(target), target, editing.make_mask("center"), SCHEDULE, steps=25,
                          generator=make_generator(0))
    assert torch.allclose(out, target, atol=1e-4)


def test_renoise_matches_the_forward_process():
    """q(x_t | x_t') after q(x_t' | x0) is q(x_t | x0): mean sqrt(ab_t) x0 and variance 1 - ab_t."""
    x0 = torch.full((20000, 1, 1, 1), 0.5)
    g = make_generator(0)
    x_mid = SCHEDULE.q_sample(x0, torch.full((20000,), 300), torch.randn(x0.shape, generator=g))
    x_t = editing.renoise(SCHEDULE, x_mid, 300, 700, g)
    ab = SCHEDULE.alpha_bar[700].item()
    assert x_t.mean().item() == pytest.approx(ab**0.5 * 0.5, abs=0.02)
    assert x_t.var().item() == pytest.approx(1 - ab, abs=0.03)


def test_masks_cover_what_they_say():
    assert editing.make_mask("top")[..., :14, :].eq(1).all() and editing.make_mask("top")[..., 14:, :].eq(0).all()
    assert editing.make_mask("center").sum() == 14 * 14
    for kind in editing.MASKS:
        assert editing.make_mask(kind).shape == (1, 1, 28, 28)
    with pytest.raises(ValueError, match="mask kind must be one of"):
        editing.make_mask("circle")


@pytest.mark.parametrize("mask, message", [
    (torch.ones(1, 1, 32, 32), "same height and width"),
    (torch.full((1, 1, 28, 28), 2.0), r"in \[0, 1\]"),
    (torch.ones(2, 1, 28, 28), "does not fit"),
    ([[1]], "must be a tensor"),
])
def test_inpainting_rejects_a_bad_mask(mask, message):
    with pytest.raises(ValueError, match=message):
        editing.inpaint(random_eps_fn(0), images(), mask, SCHEDULE, steps=5)


def test_inpainting_rejects_a_bad_resample():
    with pytest.raises(ValueError, match="resample must be an integer >= 1"):
        editing.inpaint(random_eps_fn(0), images(), editing.make_mask("top"), SCHEDULE, resample=0)


# --- Visual anagrams ---


@pytest.mark.parametrize("name", list(editing.VIEWS))
def test_every_view_is_a_pixel_permutation_with_its_inverse(name):
    view, inverse = editing.get_view(name)
    x = images()
    assert torch.equal(inverse(view(x)), x) and torch.equal(view(inverse(x)), x)
    assert torch.equal(view(x).flatten(1).sort(dim=1).values, x.flatten(1).sort(dim=1).values)


def test_rot180_turns_a_6_into_a_9_shape():
    x = torch.zeros(1, 1, 28, 28)
    x[..., 20, 3] = 1  # bottom left
    assert editing.get_view("rot180")[0](x)[0, 0, 7, 24] == 1  # top right


def test_anagram_of_a_view_with_the_same_condition_and_identity_is_the_plain_eps():
    fn = random_eps_fn(3)
    xt, t = images(), torch.full((3,), 500)
    assert torch.allclose(editing.anagram_eps(fn, fn, "identity")(xt, t), fn(xt, t))


@pytest.mark.parametrize("name", ["rot180", "flip_vertical", "flip_horizontal", "transpose"])
def test_an_anagram_seen_through_its_view_is_the_swapped_anagram(name):
    """For a view that is its own inverse: v(E_ab(x)) = E_ba(v(x)) (eq. 3 treats both readings alike)."""
    fa, fb = random_eps_fn(4), random_eps_fn(5)
    view, _ = editing.get_view(name)
    xt, t = images(), torch.full((3,), 200)
    left = view(editing.anagram_eps(fa, fb, name)(xt, t))
    right = editing.anagram_eps(fb, fa, name)(view(xt), t)
    assert torch.allclose(left, right, atol=1e-6)


def test_anagram_rejects_an_unknown_view():
    with pytest.raises(ValueError, match="unknown view 'mirror'; the views are: identity"):
        editing.anagram_eps(random_eps_fn(0), random_eps_fn(1), "mirror")


# --- Hybrid images ---


def test_split_frequencies_adds_up_and_low_is_smooth():
    x = images()
    low, high = editing.split_frequencies(x, 2.0)
    assert torch.allclose(low + high, x, atol=1e-6)
    assert low.diff(dim=-1).abs().mean() < 0.2 * x.diff(dim=-1).abs().mean()


def test_hybrid_of_one_condition_is_that_condition():
    fn = random_eps_fn(6)
    xt, t = images(), torch.full((3,), 100)
    assert torch.allclose(editing.hybrid_eps(fn, fn, 1.5)(xt, t), fn(xt, t), atol=1e-6)


def test_hybrid_takes_low_frequencies_from_far_and_high_from_near():
    far, near = random_eps_fn(7), random_eps_fn(8)
    xt, t = images(), torch.full((3,), 100)
    out = editing.hybrid_eps(far, near, 2.0)(xt, t)
    far_low, _ = editing.split_frequencies(far(xt, t), 2.0)
    _, near_high = editing.split_frequencies(near(xt, t), 2.0)
    assert torch.allclose(out, far_low + near_high)


def test_hybrid_rejects_a_bad_sigma():
    with pytest.raises(ValueError, match=r"must be in \(0, 4\] pixels"):
        editing.hybrid_eps(random_eps_fn(0), random_eps_fn(1), 0)


# --- With the shipped class-conditioned model ---


def test_sdedit_turns_a_real_3_into_an_8_with_the_shipped_model():
    from diffusionlab import course, metrics
    from diffusionlab.data import load_mnist

    model = course.load("cond")
    classifier = metrics.load_classifier()
    x, y = load_mnist("test")
    threes = x[y == 3][:16]
    target = torch.full((16,), 8)
    with model.autocast():
        kept = editing.sdedit(model.eps_fn(torch.full((16,), 3), 2.0), threes, model.schedule, 0.3, steps=20,
                              generator=make_generator(0))
        edited = editing.sdedit(model.eps_fn(target, 2.0), threes, model.schedule, 0.9, steps=20,
                                generator=make_generator(0))
    assert metrics.accuracy(classifier, kept, torch.full((16,), 3)) >= 0.9
    assert metrics.accuracy(classifier, edited, target) >= 0.8


def test_inpainting_runs_the_samplers_loop(monkeypatch):
    """One sampling loop: inpaint calls samplers.sample with a callback instead of a copy of the loop."""
    from diffusionlab.editing import inpainting as inpaint_module

    calls = []
    real = inpaint_module.sample

    def counting_sample(*args, **kwargs):
        calls.append(kwargs.get("callback"))
        return real(*args, **kwargs)

    monkeypatch.setattr(inpaint_module, "sample", counting_sample)
    x = torch.zeros(1, 1, 28, 28)
    editing.inpaint(lambda xt, t: 0 * xt, x, editing.make_mask("top"), NoiseSchedule(1000), steps=3,
                    generator=torch.Generator().manual_seed(0))
    assert len(calls) == 1 and calls[0] is not None


def test_seen_from_afar_keeps_the_size_and_removes_the_fine_strokes():
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    far = editing.seen_from_afar(x)
    assert far.shape == x.shape
    fine = lambda im: (im[..., 1:, :] - im[..., :-1, :]).abs().mean()  # noqa: E731 (pixel-to-pixel change)
    assert fine(far) < 0.2 * fine(x)
    assert torch.allclose(far, editing.split_frequencies(x, editing.FAR_SIGMA_PX)[0])


def test_renoise_refuses_to_go_down():
    """renoise(x, 5, 3) took sqrt(1 - a) with a = alpha_bar_3 / alpha_bar_5 > 1 and returned NaN without a word."""
    with pytest.raises(ValueError, match="t_from < t_to"):
        editing.renoise(SCHEDULE, torch.zeros(1, 1, 4, 4), 5, 3)
    assert torch.isfinite(editing.renoise(SCHEDULE, torch.zeros(1, 1, 4, 4), -1, 3)).all()  # from the clean image


def test_a_centre_box_larger_than_the_image_is_refused():
    """box=30 on a 28-pixel mask started the slice at -1 and painted a single pixel."""
    with pytest.raises(ValueError, match="from 1 to size=28"):
        editing.make_mask("center", 28, box=30)
    assert editing.make_mask("center", 28, box=28).sum() == 28 * 28
