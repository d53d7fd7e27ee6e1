"""The exercise checks of lesson 7: each passes on the package's reference and names the exercise, and the
failing case's inputs, when given a typical wrong answer or an unfinished one (NotImplementedError)."""

import math

import pytest
import torch

from diffusionlab import checks
from diffusionlab.checks import ExerciseError
from diffusionlab.guidance import text_guided_eps
from diffusionlab.models.vae import kl_divergence, reparameterize
from diffusionlab.schedules import NoiseSchedule

import exercise_checks  # tests/exercise_checks.py: what every exercise check must do


# --- reparameterize: wrong answers ---

def reparam_std_is_logvar(mean, logvar, generator=None):
    """Uses exp(logvar) (the variance) as the standard deviation."""
    eps = torch.randn(mean.shape, generator=generator)
    return mean + logvar.exp() * eps


def reparam_no_half(mean, logvar, generator=None):
    """Uses logvar itself as the standard deviation."""
    eps = torch.randn(mean.shape, generator=generator)
    return mean + logvar * eps


def reparam_no_generator(mean, logvar, generator=None):
    """Draws eps without the generator: not reproducible, and not the reference's draw."""
    return mean + (0.5 * logvar).exp() * torch.randn(mean.shape)


# --- kl_divergence: wrong answers ---

def kl_summed(mean, logvar):
    """Sums over everything instead of returning the per-element KL."""
    return kl_divergence(mean, logvar).sum()


def kl_sign(mean, logvar):
    """+ logvar instead of - logvar."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1 + logvar)


def kl_no_half(mean, logvar):
    return mean.pow(2) + logvar.exp() - 1 - logvar


# --- cross_attention: the reference written out, and wrong answers ---

def cross_attention_written_out(attn, x, context, scale=True, softmax_dim=-1, heads=None, out=True):
    B, N, C = x.shape
    M, h = context.shape[1], heads or attn.heads
    q = attn.to_q(x).view(B, N, h, C // h).transpose(1, 2)
    k = attn.to_k(context).view(B, M, h, C // h).transpose(1, 2)
    v = attn.to_v(context).view(B, M, h, C // h).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / (math.sqrt(C // h) if scale else 1.0)
    o = (scores.softmax(dim=softmax_dim) @ v).transpose(1, 2).reshape(B, N, C)
    return attn.to_out(o) if out else o


def attention_heads_not_transposed(attn, x, context):
    """Splits into heads with view(B, h, N, d) instead of view(B, N, h, d).transpose(1, 2)."""
    B, N, C = x.shape
    M, h = context.shape[1], attn.heads
    q = attn.to_q(x).reshape(B, h, N, C // h)
    k = attn.to_k(context).reshape(B, h, M, C // h)
    v = attn.to_v(context).reshape(B, h, M, C // h)
    o = ((q @ k.transpose(-2, -1) / math.sqrt(C // h)).softmax(-1) @ v).transpose(1, 2).reshape(B, N, C)
    return attn.to_out(o)


# --- negative_prompt_eps: the reference written out, and wrong answers ---

def negative_eps(unet, zt, t, context, negative_context, w):
    eps_cond = unet(zt, t, context=context)
    eps_neg = unet(zt, t, context=negative_context)
    return eps_neg + w * (eps_cond - eps_neg)


def negative_eps_reversed(unet, zt, t, context, negative_context, w):
    """Guides towards the negative prompt and away from the prompt."""
    return negative_eps(unet, zt, t, negative_context, context, w)


def negative_eps_subtracted(unet, zt, t, context, negative_context, w):
    """Adds the negative prompt as a second, subtracted term on top of the conditional prediction."""
    eps_cond = unet(zt, t, context=context)
    return eps_cond - w * unet(zt, t, context=negative_context)


def negative_eps_ignored(unet, zt, t, context, negative_context, w):
    """Forgets the negative prompt: the conditional prediction alone."""
    return unet(zt, t, context=context)


CASES = [
    # check, reference, wrong answers
    (checks.check_reparameterize, reparameterize, [reparam_std_is_logvar, reparam_no_half, reparam_no_generator,
                                                    lambda m, lv, g=None: m]),
    (checks.check_kl_divergence, kl_divergence, [kl_summed, kl_sign, kl_no_half, lambda m, lv: kl_divergence(m, lv).mean(-1)]),
    (checks.check_cross_attention, lambda attn, x, c: attn(x, c),
     [lambda a, x, c: cross_attention_written_out(a, x, c, scale=False),
      lambda a, x, c: cross_attention_written_out(a, x, c, softmax_dim=-2),
      lambda a, x, c: cross_attention_written_out(a, x, c, heads=1),
      lambda a, x, c: cross_attention_written_out(a, x, c, out=False),
      attention_heads_not_transposed]),
    (checks.check_negative_prompt_eps,
     lambda unet, zt, t, c, nc, w: text_guided_eps(unet, NoiseSchedule(1000, "cosine"), "eps", c, nc, w)(zt, t),
     [negative_eps_reversed, negative_eps_subtracted, negative_eps_ignored]),
]
test_reference_passes, test_wrong_answers_fail_naming_the_exercise_and_the_case, test_unfinished_exercise = (
    exercise_checks.contract_tests(CASES))


def test_written_out_solutions_pass(capsys):
    """The notebook's solutions, written out as a student would, pass (not only the package's own functions)."""
    checks.check_cross_attention(cross_attention_written_out)
    checks.check_negative_prompt_eps(negative_eps)
    out = capsys.readouterr().out
    assert "PASS cross_attention" in out and "PASS negative_prompt_eps" in out


def test_cross_attention_failure_names_the_shapes():
    with pytest.raises(ExerciseError, match=r"case 1 of 4 \(attn: a Attention, x: \(2, 64, 32\) tensor, context: \(2, 12, 16\)"):
        checks.check_cross_attention(lambda a, x, c: cross_attention_written_out(a, x, c, scale=False))
