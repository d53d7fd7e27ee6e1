"""Latent diffusion with text: Stable Diffusion's recipe at MNIST scale (lesson 7).

Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models":
  1. an autoencoder (`models.vae.VAE`) maps a 32x32 digit to a 4 x 8 x 8 latent z0, scaled to unit
     variance by `vae.scale_factor` (sec. 3.1, appendix G);
  2. a text encoder (`models.text_encoder.TextEncoder`) turns the caption into one embedding per token;
  3. a UNet denoises latents, x_t = sqrt(alpha_bar_t) z0 + sqrt(1 - alpha_bar_t) eps, reading the text
     through cross-attention: Q from the image positions, K and V from the tokens (sec. 3.3, eq. 3);
     the text encoder and the UNet are trained together on DDPM's loss (their eq. 2, our `text_diffusion_loss`);
  4. sampling runs the same DDPM/DDIM loop as the pixel models (`samplers.sample`) on latents, with
     classifier-free guidance (Ho & Salimans 2022) where the unconditional prediction is that of the empty
     caption "", or of a negative prompt in its place (`guidance.text_guided_eps`), then decodes.
Latents are not images: nothing clips them to [-1, 1] during sampling; only the decoded digits are.

    pipe = LatentDiffusion.load()                        # the shipped VAE and text model
    images = pipe.sample(["a thick seven", "a 2 leaning right"], guidance_scale=3.0, steps=50)
    images = pipe.sample("a seven", n=16, negative_prompts="a thin seven")  # (16, 1, 28, 28) in [-1, 1]

Shapes in comments: B batch, L tokens, D text width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..captions import ATTRIBUTES, P_ATTRIBUTE, P_PLAIN, attributes, make_captions, sides
from ..checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from ..data import load_mnist
from ..guidance import text_guided_eps
from ..losses import noised_batch, prediction_loss
from ..models.text_encoder import TextEncoder, TextEncoderConfig, Tokenizer
from ..models.vae import VAE, VAEConfig, vae_loss
from ..models.vae import config_dict as vae_config_dict
from ..samplers import SAMPLERS, sample
from ..schedules import NoiseSchedule
from ..train import train
from ..models.unet import UNet, UNetConfig
from ..models.unet import config_dict as unet_config_dict

DEFAULT_TEXT_GUIDANCE = 1.5  # guidance at every step, the setting lessons 8 and 9 were measured at: 99.6% of 1000
# digits read right with FD 1.5x the floor, but "thin" and "large" land on their side in only 90% and 88%
RECOMMENDED_GUIDANCE = {"guidance_scale": 2.5, "guidance_interval": (0, 825)}  # what the course recommends for
# text-to-image sampling (lesson 7): guidance 2.5, but not at the noisiest timesteps (t >= 825: 9 of DDIM's 50 steps),
# where it costs the most diversity (Kynkaanniemi et al. 2024). Measured with benchmarks/latent_text.py's measures
# (RESULTS.md, "captions that name everything or nothing"): 1000 digits 99.6% read right, FD 1.66x the floor; thin 96%,
# large 92% (500 per word; "large" 91.0% over four draws of 500)
SCALE_IMAGES = 10000  # training digits whose latents fit the scale factor (its std is settled well before 60,000)
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent.parent / "data" / "checkpoints"


@dataclass
class VAERecipe:
    """How the course's VAE is built and trained (`benchmarks/latent_text.py` measured the choices)."""

    config: VAEConfig = field(default_factory=lambda: VAEConfig(channels=(16, 32, 32)))
    kl_weight: float = 1e-3  # KL per latent element, against the MSE per pixel
    lr: float = 2e-3
    batch_size: int = 128
    ema_decay: float = 0.999
    warmup: int = 100


@dataclass
class TextRecipe:
    """How the course's latent text-to-image model is built and trained."""

    unet: UNetConfig = field(default_factory=lambda: UNetConfig(
        in_channels=4, out_channels=4, image_size=8, channels=(32, 64), attention=(False, True), context_dim=64))
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    lr: float = 2e-3
    batch_size: int = 128
    ema_decay: float = 0.999
    warmup: int = 100
    # v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) z0 (Salimans & Ho 2022): latents are never clipped, and with
    # eps the estimate x0_hat = (zt - sqrt(1 - alpha_bar) eps_hat) / sqrt(alpha_bar) multiplies the error of
    # eps_hat by 1 / sqrt(alpha_bar_T) = 2e4 at the first step of the cosine schedule (sampled latents had std ~800)
    prediction: str = "v"
    schedule: dict = field(default_factory=lambda: {"T": 1000, "kind": "cosine"})
    p_uncond: float = 0.1  # probability of training on the empty caption (classifier-free guidance)
    p_plain: float = P_PLAIN  # probability that a caption names the digit only (captions.make_caption)
    p_attribute: float = P_ATTRIBUTE  # otherwise, the probability of naming each attribute the digit has a side of


VAE_RECIPE = VAERecipe()
TEXT_RECIPE = TextRecipe()


class TextToLatent(nn.Module):
    """The text encoder and the latent UNet, trained jointly: forward(zt, t, tokens) -> the network's
    prediction (B, 4, 8, 8): eps or v, as `prediction` says (`LatentDiffusion.prediction`; the recipe's is v).

    `encode_text(tokens)` gives the context (B, L, D) once; `forward(..., context=...)` reuses it, as
    sampling does at every step.
    """

    def __init__(self, unet_config: UNetConfig, text_config: TextEncoderConfig):
        super().__init__()
        if unet_config.context_dim != text_config.width:
            raise ValueError(f"the UNet's context_dim ({unet_config.context_dim}) must equal the text encoder's "
                             f"width ({text_config.width})")
        self.text_encoder = TextEncoder(text_config)
        self.unet = UNet(unet_config)
        self.config = unet_config

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(tokens)  # (B, L, D)

    def forward(self, zt: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        if context is None:
            if tokens is None:
                raise ValueError("pass tokens (B, L) from the tokenizer, or context (B, L, D) from encode_text")
            context = self.encode_text(tokens)
        return self.unet(zt, t, context=context)


def text_diffusion_loss(model: TextToLatent, z0: torch.Tensor, codes: torch.Tensor, generator: torch.Generator,
                        schedule: NoiseSchedule, tokenizer: Tokenizer, p_uncond: float = 0.1,
                        prediction: str = "eps", p_attribute: float = P_ATTRIBUTE,
                        p_plain: float = P_PLAIN) -> torch.Tensor:
    """DDPM's loss on latents, with a fresh caption for every image at every step.

    z0:    (B, 4, 8, 8) scaled latents of the training digits
    codes: (B, 4) long: the digit and its side (-1, 0, +1) of each attribute in `captions.ATTRIBUTES`
           (so a digit is described by different templates and subsets of its attributes over training)
    p_uncond: the probability of replacing the caption with "", the unconditional prompt of CFG.
    p_plain, p_attribute: how often a caption names the digit only, and otherwise each attribute with a side.
    """
    codes = codes.cpu()

    def write(g):
        return make_captions(codes[:, 0], {name: codes[:, 1 + i] for i, name in enumerate(ATTRIBUTES)}, g,
                             p_attribute=p_attribute, p_plain=p_plain)

    return captioned_diffusion_loss(model, z0, write, generator, schedule, tokenizer, p_uncond, prediction)


def captioned_diffusion_loss(model: TextToLatent, z0: torch.Tensor, write_captions, generator: torch.Generator,
                             schedule: NoiseSchedule, tokenizer: Tokenizer, p_uncond: float = 0.1,
                             prediction: str = "eps") -> torch.Tensor:
    """DDPM's loss on latents z0 (B, 4, 8, 8) for the captions write_captions(cpu generator) -> B strings,
    each replaced by "" with probability p_uncond (the unconditional prompt of CFG). The lesson-7 text
    model and its fine-tuning (lesson 8) differ only in how they write captions."""
    zt, t, eps = noised_batch(schedule, z0, generator)
    drop = torch.rand(z0.shape[0], generator=generator, device=z0.device) < p_uncond
    # captions are written last: how many random draws they take depends on the captions
    captions = write_captions(_cpu_generator(generator))
    captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
    tokens = tokenizer.encode(captions, z0.device)  # (B, L)
    return prediction_loss(model(zt, t, tokens), schedule, prediction, z0, t, eps)


def _cpu_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """Captions are written on the CPU: a CPU generator seeded from `generator` (which may live on a GPU)."""
    if generator is None or generator.device.type == "cpu":
        return generator
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator().manual_seed(seed)


def _cycle_over(prompts, n: int | None, what: str) -> list[str]:
    """A caption or a list of them, cycled over n images (n=None: one image per caption)."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError(f"give at least one {what}")
    n = len(prompts) if n is None else n
    return [prompts[i % len(prompts)] for i in range(n)]  # cycle over the n images


@dataclass
class LatentDiffusion:
    """A trained latent text-to-image model: VAE, tokenizer, text encoder + UNet, and their noise schedule."""

    vae: VAE
    model: TextToLatent
    schedule: NoiseSchedule
    tokenizer: Tokenizer
    prediction: str = "eps"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device) -> "LatentDiffusion":
        self.vae.to(device)
        self.model.to(device)
        return self

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Captions -> context (B, L, D); raises a ValueError naming any unknown word."""
        return self.model.encode_text(self.tokenizer.encode(prompts, self.device))

    def eps_fn(self, prompts: list[str], guidance_scale: float = DEFAULT_TEXT_GUIDANCE,
               negative_prompts: list[str] | None = None, guidance_interval: tuple[int, int] | None = None):
        """The eps_fn(z_t, t) the samplers call, guided towards `prompts` and away from the negative
        prompts (or from the empty caption when there are none), at the timesteps of `guidance_interval`
        (None: every step; `guidance.text_guided_eps`)."""
        context = self.encode_prompts(prompts)
        uncond = self.encode_prompts(negative_prompts if negative_prompts is not None else [""] * len(prompts))
        return text_guided_eps(self.model.unet, self.schedule, self.prediction, context, uncond, guidance_scale,
                               guidance_interval)

    @torch.no_grad()
    def sample_latents(self, eps_fn, n: int, sampler: str = "ddim", steps: int = 50, eta: float = 0.0,
                       generator: torch.Generator | None = None, progress: bool = False,
                       callback=None) -> torch.Tensor:
        """The reverse process on latents: n latents (n, 4, 8, 8), scaled as the UNet sees them.

        The course's one loop, `samplers.sample`, with clip=None: latents are not clipped to [-1, 1] (they
        have unit variance, so a quarter of their values lie outside), neither x0_hat at each step nor the result.
        callback(i, t, t_prev, z_prev, z0_hat) is called after every step (`samplers.sample`; the playground's
        progress bar and Stop button).
        """
        return sample(eps_fn, (n, *self.vae.config.latent_shape), self.schedule, sampler, steps, eta,
                      generator=generator, device=self.device, progress=progress, clip=None, callback=callback)

    @torch.no_grad()
    def sample(self, prompts, n: int | None = None, negative_prompts=None,
               guidance_scale: float = DEFAULT_TEXT_GUIDANCE, steps: int = 50, sampler: str = "ddim",
               eta: float = 0.0, generator: torch.Generator | None = None, batch_size: int = 250,
               return_latents: bool = False, progress: bool = False, callback=None,
               guidance_interval: tuple[int, int] | None = None):
        """Digits (N, 1, 28, 28) in [-1, 1] drawn for `prompts`.

        prompts:          a caption or a list; with n, they cycle over the n images (n=None: one image each)
        negative_prompts: a caption or a list (cycled the same way), whose prediction replaces the
                          unconditional one: the sample is pushed away from it
        guidance_scale:   w of eps_uncond + w (eps_cond - eps_uncond); 1: no guidance
        guidance_interval: None: guide every step; (lo, hi): only the timesteps lo <= t < hi. The course's
                          recommended setting is `pipe.sample(prompts, **RECOMMENDED_GUIDANCE)`.
        Images are made `batch_size` at a time; with return_latents, returns (images, latents (N, 4, 8, 8)).
        callback: called after every sampling step, as `sample_latents` says.
        """
        prompts = _cycle_over(prompts, n, "prompt")
        negatives = _cycle_over(negative_prompts, len(prompts), "negative prompt") if negative_prompts is not None else None
        self.model.eval()
        self.vae.eval()
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        latents = []
        for start in range(0, len(prompts), batch_size):
            sl = slice(start, start + batch_size)
            fn = self.eps_fn(prompts[sl], guidance_scale, negatives[sl] if negatives else None, guidance_interval)
            latents.append(self.sample_latents(fn, len(prompts[sl]), sampler, steps, eta, generator, progress, callback))
        z = torch.cat(latents)
        images = self.vae.decode_latents(z)
        return (images, z) if return_latents else images


# ---------------------------------------------------------------- training and loading


def train_vae(steps: int | None = None, minutes: float | None = None, checkpoint=None, device=None, seed: int = 0,
              batch_size: int | None = None, recipe: VAERecipe = VAE_RECIPE, limit: int | None = None,
              progress: bool = True, **kwargs):
    """Train the VAE on the MNIST training set with `vae_loss` and the course loop (`train.train`: EMA,
    checkpoints, resuming), then set its scale_factor from the training latents. Returns (EMA VAE, history)."""
    device = torch.device(device or "cpu")
    x, _ = load_mnist("train")
    x = x[:limit]  # limit=None: all 60,000
    torch.manual_seed(seed)
    vae = VAE(recipe.config).to(device)

    def loss_fn(model, x0, y, g):
        return vae_loss(model, x0, y, g, kl_weight=recipe.kl_weight)

    meta = {"model_name": "vae", "config": vae_config_dict(recipe.config), "kl_weight": recipe.kl_weight}
    ema, history = train(vae, loss_fn, x, None, steps=steps, minutes=minutes, batch_size=batch_size or recipe.batch_size,
                         lr=recipe.lr, warmup=recipe.warmup, ema_decay=recipe.ema_decay, seed=seed,
                         checkpoint=checkpoint, metadata=meta, progress=progress, **kwargs)
    ema.eval().fit_scale_factor(x[:SCALE_IMAGES])
    if checkpoint is not None and Path(checkpoint).exists():  # store the fitted scale factor with the weights
        state = load_checkpoint(checkpoint, "vae")
        save_checkpoint({**state, "ema": ema.state_dict()}, checkpoint)
    return ema, history


def load_vae(checkpoint=None, device=None) -> VAE:
    """The course's shipped VAE (data/checkpoints/vae.pt), or one saved by `train_vae`."""
    path = Path(checkpoint) if checkpoint is not None else CHECKPOINT_DIR / "vae.pt"
    state = load_checkpoint(path, "vae")
    vae = VAE(VAEConfig(**state["config"]))
    _load_weights(vae, state, path, "vae")
    return vae.to(device or "cpu").eval().requires_grad_(False)


def training_codes(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N, 4) long: each digit's label and its side of each attribute, from which `text_diffusion_loss`
    writes a fresh caption at every step."""
    s = sides(attributes(images), labels)
    return torch.stack([labels.long()] + [s[name] for name in ATTRIBUTES], dim=1)


def latent_training_data(vae: VAE, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The latents the text model learns, z0 (N, 4, 8, 8), and their codes (N, 4), measured on what each
    latent *decodes to*, not on the original digit.

    The model learns latents and we judge the decoded images, so a caption must be true of the decoded
    image: the VAE redraws about 1 in 10 of the thinnest digits just above the "thin" threshold (and 1 in
    13 of the widest just below "large"), and captions measured on the originals would teach the model to
    call those "thin" too.
    """
    z0 = vae.encode_latents(images).float()  # (N, 4, 8, 8), unit variance
    return z0, training_codes(vae.decode_latents(z0), labels)


def train_text(steps: int | None = None, minutes: float | None = None, checkpoint=None, device=None, seed: int = 0,
               batch_size: int | None = None, vae: VAE | str | Path | None = None, recipe: TextRecipe = TEXT_RECIPE,
               limit: int | None = None, progress: bool = True, **kwargs):
    """Train the text encoder and the latent UNet together on the VAE's latents of the MNIST training set.

    vae: a VAE, a checkpoint path, or None for the course's shipped VAE. Returns (LatentDiffusion, history).
    """
    device = torch.device(device or "cpu")
    vae = vae if isinstance(vae, VAE) else load_vae(vae, device)
    vae.to(device).eval()
    x, y = load_mnist("train")
    x, y = x[:limit], y[:limit]  # limit=None: all 60,000
    if progress:
        print(f"encoding the {len(x):,} training digits with the VAE and measuring their captions", flush=True)
    z0, codes = latent_training_data(vae, x, y)
    torch.manual_seed(seed)
    model = TextToLatent(recipe.unet, recipe.text).to(device)
    schedule = NoiseSchedule(**recipe.schedule)
    tokenizer = Tokenizer(max_length=recipe.text.max_length)

    def loss_fn(m, z, c, g):
        return text_diffusion_loss(m, z, c, g, schedule, tokenizer, recipe.p_uncond, recipe.prediction,
                                   recipe.p_attribute, recipe.p_plain)

    meta = {"model_name": "text", "unet_config": unet_config_dict(recipe.unet), "text_config": asdict(recipe.text),
            "prediction": recipe.prediction, "schedule": dict(recipe.schedule),
            "vae_scale_factor": float(vae.scale_factor)}
    ema, history = train(model, loss_fn, z0, codes, steps=steps, minutes=minutes,
                         batch_size=batch_size or recipe.batch_size, lr=recipe.lr, warmup=recipe.warmup,
                         ema_decay=recipe.ema_decay, seed=seed, checkpoint=checkpoint, metadata=meta,
                         progress=progress, **kwargs)
    ema.eval()
    return LatentDiffusion(vae, ema, schedule, tokenizer, recipe.prediction), history


def load(checkpoint=None, vae=None, device=None) -> "LatentDiffusion":
    """The latent text-to-image model: from `checkpoint` (default: the shipped text.pt) with the VAE it was
    trained on (`vae`: a VAE, a path, or None for the shipped vae.pt)."""
    path, state, vae = read_checkpoint(checkpoint, "text", vae)
    text_config = TextEncoderConfig(**state["text_config"])
    model = TextToLatent(UNetConfig(**state["unet_config"]), text_config)
    _load_weights(model, state, path, "text")
    model.eval().requires_grad_(False)
    pipe = LatentDiffusion(vae, model, NoiseSchedule(**state["schedule"]), Tokenizer(max_length=text_config.max_length),
                           state.get("prediction", "eps"))
    return pipe.to(device or "cpu")


def read_checkpoint(checkpoint, name: str, vae=None) -> tuple[Path, dict, VAE]:
    """(path, state, vae) for a model on the VAE's latents (text, text-printed, pix2pix): `checkpoint`, or the
    shipped `name`.pt when None, and the VAE it was trained on (`vae`: a VAE, a path, or None for the shipped
    vae.pt; a VAE with another scale factor is refused by `check_same_vae`)."""
    path = Path(checkpoint) if checkpoint is not None else CHECKPOINT_DIR / f"{name}.pt"
    state = load_checkpoint(path, name)
    vae = vae if hasattr(vae, "decode_latents") else load_vae(vae)
    check_same_vae(vae, state, path)
    return path, state, vae


def check_same_vae(vae: VAE, state: dict, path) -> None:
    """Refuse a VAE other than the one whose latents the checkpoint's model learnt (told by the scale factor)."""
    if abs(float(vae.scale_factor) / state["vae_scale_factor"] - 1) > 1e-3:
        raise CheckpointError(f"{path} was trained on the latents of another VAE (scale factor "
                              f"{state['vae_scale_factor']:.4f}, this VAE's is {float(vae.scale_factor):.4f}); "
                              "pass the VAE it was trained with (--vae)")


def _load_weights(module: nn.Module, state: dict, path, name: str) -> None:
    try:
        module.load_state_dict({k: v.float() for k, v in state["ema"].items()})
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the weights do not fit the {name!r} network ({str(err).splitlines()[0]})") from None
