import pytest
import torch

from diffusionlab.models.vae import VAE, VAEConfig, crop, kl_divergence, pad, reparameterize, vae_loss


def tiny():
    return VAE(VAEConfig(channels=(8, 8, 16)))


def test_pad_and_crop_round_trip():
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    assert pad(x).shape == (2, 1, 32, 32)
    assert pad(x)[..., 0, :].eq(-1).all()  # the border is background
    assert torch.equal(crop(pad(x)), x)


def test_shapes_and_a_clear_error_for_unpadded_digits():
    vae = tiny()
    mean, logvar = vae.encode(torch.zeros(3, 1, 32, 32))
    assert mean.shape == logvar.shape == (3, 4, 8, 8) == (3, *vae.config.latent_shape)
    assert vae.decode(mean).shape == (3, 1, 32, 32)
    with pytest.raises(ValueError, match="pad 28x28 digits"):
        vae.encode(torch.zeros(3, 1, 28, 28))
    with pytest.raises(ValueError, match="z must have shape"):
        vae.decode(torch.zeros(3, 4, 4, 4))


def test_reparameterize_draws_from_the_posterior():
    mean = torch.tensor([1.0, -2.0]).repeat(50_000, 1)
    logvar = torch.tensor([0.0, 2 * torch.log(torch.tensor(0.5)).item()]).repeat(50_000, 1)
    z = reparameterize(mean, logvar, torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.02)
    assert torch.allclose(z.std(0), torch.tensor([1.0, 0.5]), atol=0.02)
    again = reparameterize(mean, logvar, torch.Generator().manual_seed(0))
    assert torch.equal(z, again)  # reproducible with a generator


def test_reparameterize_lets_gradients_reach_mean_and_logvar():
    mean = torch.zeros(4, requires_grad=True)
    logvar = torch.zeros(4, requires_grad=True)
    reparameterize(mean, logvar, torch.Generator().manual_seed(0)).sum().backward()
    assert torch.equal(mean.grad, torch.ones(4))
    assert logvar.grad.abs().sum() > 0


def test_kl_is_zero_for_the_prior_and_matches_torch():
    assert torch.equal(kl_divergence(torch.zeros(5), torch.zeros(5)), torch.zeros(5))
    mean, logvar = torch.randn(100), torch.randn(100)
    ours = kl_divergence(mean, logvar)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mean, (0.5 * logvar).exp()),
                                            torch.distributions.Normal(0.0, 1.0))
    assert torch.allclose(ours, ref, atol=1e-5)
    assert (ours >= 0).all()


def test_loss_weights_the_kl_term():
    vae, x = tiny(), torch.rand(4, 1, 28, 28) * 2 - 1
    losses = [vae_loss(vae, x, None, torch.Generator().manual_seed(0), kl_weight=w).item() for w in (0.0, 1.0)]
    mean, logvar = vae.encode(pad(x))
    assert losses[1] - losses[0] == pytest.approx(kl_divergence(mean, logvar).mean().item(), rel=1e-4)


def test_a_few_steps_reduce_the_loss():
    from diffusionlab.data import load_mnist
    from diffusionlab.train import train

    x, _ = load_mnist("test")
    vae = tiny()
    _, history = train(vae, vae_loss, x[:256], steps=30, batch_size=32, lr=3e-3, warmup=5, progress=False, amp=False)
    first, last = sum(history["loss"][:5]) / 5, sum(history["loss"][-5:]) / 5
    assert last < 0.7 * first


def test_scale_factor_gives_unit_variance_latents():
    vae = tiny().eval()
    x = torch.rand(64, 1, 28, 28) * 2 - 1
    s = vae.fit_scale_factor(x)
    assert s == pytest.approx(vae.scale_factor.item())
    assert vae.encode_latents(x).std().item() == pytest.approx(1.0, rel=1e-3)
    z = vae.encode_latents(x)
    assert torch.allclose(vae.decode_latents(z), crop(vae.decode(z / s)).clamp(-1, 1), atol=1e-5)
