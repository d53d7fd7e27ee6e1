"""InstructPix2Pix at MNIST scale: a model that edits a digit by a written instruction (lesson 9).

Brooks, Holynski & Efros 2022, "InstructPix2Pix: Learning to Follow Image Editing Instructions":
  1. the data: (input, instruction, edited) triplets, made by a text-to-image model with prompt-to-prompt
     and filtered (sec. 3.1; ours: `pairs.make_pairs`, with the lesson-7 model and the lesson-8 controllers);
  2. the model (sec. 3.2): the lesson-7 latent UNet reads the noisy latent z_t and the input image's
     latent E(c_I) side by side, cat([z_t, E(c_I)]) (B, 8, 8, 8), and the instruction c_T through
     cross-attention. The four new input channels start at zero and every other weight, the text encoder's
     included, is copied from the lesson-7 model (`models.instruct.add_image_channels`), so training starts
     from the text-to-image model; the text encoder gets rows for the instruction words ("make", "turn");
  3. training: lesson 7's loss (v-prediction) on the latents of the edited images, with conditioning
     dropout, 5% instruction only, 5% image only, 5% both (`models.instruct.drop_conditions`), by the
     course loop (`train.train`: EMA, exact resuming, Ctrl-C saves);
  4. sampling: the course's one loop (`samplers.sample`) with the two guidance scales of eq. 3
     (`guidance.instruct_guided_eps`),
         eps = eps(z, 0, 0) + s_I (eps(z, c_I, 0) - eps(z, 0, 0)) + s_T (eps(z, c_I, c_T) - eps(z, c_I, 0)),
     image_guidance s_I pulls towards the input, text_guidance s_T towards the instruction.

"Temperature" (`strength`, as SDEdit's, lesson 6): how far from the input the edit starts. 1 starts from
pure noise, as the paper does (the input then acts only through the model's image channels); 0.5 noises the
input's latent to the middle of the sampler's timesteps and runs only the second half of the steps.

Variants (`VARIANTS`, after the six a public visualizer set out to train): "full" (CFG + DDIM), "no-ddim"
(CFG, DDPM ancestral sampling), "no-cfg" (s_I = s_T = 1: the conditional prediction, DDIM), "no-cfg-no-ddim",
and "img2img", the baseline: SDEdit on latents with the lesson-7 text model and the *edited caption*
("a thick seven" for "make it thicker" on a seven), which knows nothing of the input but its noised latent.

    pipe = load()                                                      # the shipped pix2pix.pt
    edited = pipe.edit(digits, "turn it into a 3", text_guidance=3, image_guidance=1.5, steps=20)
    edited = pipe.edit("photo.jpg", "make it thicker", variant="img2img", strength=0.6)

Shapes in comments: B batch, L tokens, D text width.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..captions import DIGIT_WORDS, WORDS, _article, words
from ..editing.img2img import check_strength, sdedit_start
from ..guidance import check_dual_scales, instruct_guided_eps
from ..instructions import INSTRUCTION_VOCAB, read_instruction
from ..losses import noised_batch, prediction_loss
from ..models.instruct import P_DROP, add_image_channels, drop_conditions
from ..models.text_encoder import TextEncoderConfig, Tokenizer
from ..models.unet import UNetConfig
from ..models.unet import config_dict as unet_config_dict
from ..samplers import SAMPLERS, sample
from ..schedules import NoiseSchedule
from ..train import train
from .latent import LatentDiffusion, TextToLatent, _load_weights, read_checkpoint
from .latent import load as load_text

MODEL_NAME = "pix2pix"
# Chosen on 300 MNIST test digits per kind of instruction, on two draws (benchmarks/instruct_pix2pix.py --sections
# kinds --seed 0 and 1, 20 DDIM steps, the shipped model): at s_T 3, s_I 3 digit changes read right 93.3% / 95.7%
# and style edits kept the digit in 93.7-96.7% (thickness 94.7% / 93.7%; 95.8% on 1000 more digits, seed 2); s_I 3.5 or
# s_T 2.5 read only 86.0-87.3% of digit changes right, and kept the digit of thickness edits at most 0.3 points
# more often. The paper's, with Stable Diffusion:
# s_T = 7.5, s_I = 1.5.
DEFAULT_TEXT_GUIDANCE = 3.0
DEFAULT_IMAGE_GUIDANCE = 3.0
DEFAULT_STEPS = 20
MAX_STEPS = 1000
# variant -> (sampler, classifier-free guidance); img2img samples with the `sampler` asked for (default DDIM)
VARIANTS = {"full": ("ddim", True), "no-ddim": ("ddpm", True), "no-cfg": ("ddim", False),
            "no-cfg-no-ddim": ("ddpm", False), "img2img": (None, True)}


@dataclass
class InstructRecipe:
    """How the course trains InstructPix2Pix from the lesson-7 text model."""

    lr: float = 1e-3  # lesson 7 trained at 2e-3 from scratch; a trained start takes a smaller step
    batch_size: int = 64
    ema_decay: float = 0.999
    warmup: int = 100
    p_drop: float = P_DROP  # each of: instruction only, image only, both dropped


INSTRUCT_RECIPE = InstructRecipe()


class InstructModel(TextToLatent):
    """The text encoder and the image-conditioned UNet: forward(zt, t, image_latent, tokens) -> (B, 4, 8, 8).

    Lesson 7's `TextToLatent` with the input image's latent beside the noisy one: the UNet's input is
    cat([zt, image_latent], 1). `encode_text(tokens)` gives the context (B, L, D) once, and
    `forward(..., context=...)` reuses it, as sampling does at every step.
    """

    @property
    def image_channels(self) -> int:
        return self.config.in_channels - self.config.out_channels

    def forward(self, zt: torch.Tensor, t: torch.Tensor, image_latent: torch.Tensor, tokens: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        if context is None:
            if tokens is None:
                raise ValueError("pass tokens (B, L) from the tokenizer, or context (B, L, D) from encode_text")
            context = self.encode_text(tokens)
        return self.unet(torch.cat([zt, image_latent.to(zt.dtype)], 1), t, context=context)  # (B, C + C_I, h, w) in


def from_text_model(base: LatentDiffusion, generator: torch.Generator | None = None):
    """The untrained InstructPix2Pix model made from a lesson-7 pipeline: (InstructModel, Tokenizer).

    The tokenizer is the base's with the instruction words it lacks added after its own (every old word keeps
    its id; `models.instruct.grow_token_embedding` gives them embedding rows, drawn from `generator`); the UNet
    gets as many zero-initialised input channels as the latent has (`add_image_channels`). `base` is not changed.
    """
    from ..finetune import extend_vocabulary  # lesson 8's: the same way of adding words

    text = copy.deepcopy(base.model)
    grown = LatentDiffusion(base.vae, text, base.schedule, Tokenizer(base.tokenizer.vocab[2:], base.tokenizer.max_length),
                            base.prediction)
    extend_vocabulary(grown, INSTRUCTION_VOCAB, generator)
    C = text.config.out_channels
    unet = add_image_channels(text.unet, C)
    model = InstructModel(unet.config, TextEncoderConfig(**asdict(text.text_encoder.config)))
    model.text_encoder.load_state_dict(text.text_encoder.state_dict())
    model.unet.load_state_dict(unet.state_dict())
    return model.to(base.device), grown.tokenizer


def instruct_loss(model: InstructModel, z0: torch.Tensor, image_latents: torch.Tensor, instructions: list[str],
                  generator: torch.Generator, schedule: NoiseSchedule, tokenizer: Tokenizer, p_drop: float = P_DROP,
                  prediction: str = "v") -> torch.Tensor:
    """Lesson 7's loss for the edited latents z0 (B, 4, 8, 8), given the input images' latents (B, 4, 8, 8) and
    the instructions, after conditioning dropout (`drop_conditions`: a zero latent, the empty instruction)."""
    zt, t, eps = noised_batch(schedule, z0, generator)
    image_latents, instructions, _, _ = drop_conditions(image_latents, instructions, p_drop, generator)
    out = model(zt, t, image_latents, tokenizer.encode(instructions, z0.device))
    return prediction_loss(out, schedule, prediction, z0, t, eps)


# ---------------------------------------------------------------- the pipeline


def check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be a whole number of sampling steps from 2 to {MAX_STEPS}, got {steps!r}")
    return steps


def check_variant(variant: str, sampler: str | None) -> str:
    """The sampler a variant uses; a `sampler` that contradicts the variant is refused."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if sampler is not None and sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    own = VARIANTS[variant][0]
    if own is not None and sampler is not None and sampler != own:
        other = {"full": "no-ddim", "no-ddim": "full", "no-cfg": "no-cfg-no-ddim", "no-cfg-no-ddim": "no-cfg"}[variant]
        raise ValueError(f"variant {variant!r} samples with {own}; for {sampler} use variant {other!r}")
    return own or sampler or "ddim"


def as_images(images) -> torch.Tensor:
    """The digits to edit: a tensor (N, 1, 28, 28) in [-1, 1], or one picture of any size and mode (a path,
    bytes, a PIL image or an array: `data.load_image` crops and resizes it)."""
    if not isinstance(images, torch.Tensor):
        from ..data import load_image
        return load_image(images)
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28) or len(images) == 0:
        raise ValueError(f"images must have shape (N, 1, 28, 28), got {tuple(images.shape)}; for one image use "
                         "x[None], for a picture of another size pass the file (data.load_image resizes it)")
    if not torch.isfinite(images).all() or images.min() < -1.001 or images.max() > 1.001:
        raise ValueError(f"images must be in [-1, 1], got values from {float(images.min()):.3g} to "
                         f"{float(images.max()):.3g} (images in [0, 1]: pass x * 2 - 1)")
    return images.float()


def check_words(tokenizer: Tokenizer, texts: list[str], what: str = "instruction") -> None:
    """Name every word the model does not know, each with its closest known words (as the tokenizer does)."""
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"an {what} must be a string, got {type(text).__name__}: {text!r}")
        unknown = [w for w in dict.fromkeys(words(text)) if w not in tokenizer.ids]
        if unknown:
            known = tokenizer.vocab[2:]
            hints = []
            for w in unknown:
                close = difflib.get_close_matches(w, known, n=3, cutoff=0.5)
                hints.append(f"{w!r}" + (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""))
            raise ValueError(f"unknown word{'s' if len(unknown) > 1 else ''} {', '.join(hints)} in the {what} "
                             f"{text!r}. The model knows {len(known)} words: {', '.join(known)}")
    for text in texts:
        tokenizer.tokenize(text)  # too long: its own message


def edited_caption(kind: str, target: int, digit: int | None = None) -> str:
    """The caption after an edit, in the plainest wording: ("digit", 3) -> "a three"; ("thickness", +1, 7) ->
    "a thick seven"; ("slant", -1, 7) -> "a seven leaning left"."""
    if kind == "digit":
        return f"{_article(DIGIT_WORDS[target])} {DIGIT_WORDS[target]}"
    word = WORDS[kind][target > 0][0]
    phrase = f"{DIGIT_WORDS[digit]} {word}" if kind == "slant" else f"{word} {DIGIT_WORDS[digit]}"
    return f"{_article(phrase)} {phrase}"


def _one_or_each(texts, n: int, what: str) -> list[str]:
    """One text for all n images, or exactly one per image (unlike `latent.sample`'s prompts, not cycled)."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    if len(texts) not in (1, n):
        raise ValueError(f"give one {what} for all {n} images or one per image, got {len(texts)}")
    return texts * n if len(texts) == 1 else texts


@dataclass
class InstructPix2Pix:
    """A trained InstructPix2Pix model: VAE, tokenizer, InstructModel and its noise schedule, and (for the img2img
    baseline) the lesson-7 text pipeline, loaded when first needed from `text_checkpoint` (None: the shipped one)."""

    vae: nn.Module
    model: InstructModel
    schedule: NoiseSchedule
    tokenizer: Tokenizer
    prediction: str = "v"
    text_pipe: LatentDiffusion | None = None
    text_checkpoint: str | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device) -> "InstructPix2Pix":
        self.vae.to(device)
        self.model.to(device)
        if self.text_pipe is not None:
            self.text_pipe.to(device)
        return self

    def text_model(self) -> LatentDiffusion:
        """The lesson-7 text-to-image pipeline of the img2img baseline (same VAE)."""
        if self.text_pipe is None:
            path = self.text_checkpoint if self.text_checkpoint and Path(self.text_checkpoint).exists() else None
            self.text_pipe = load_text(path, vae=self.vae, device=self.device)
        return self.text_pipe

    @torch.no_grad()
    def encode_instructions(self, instructions: list[str]) -> torch.Tensor:
        """Instructions -> context (B, L, D); an unknown word raises a ValueError naming it."""
        check_words(self.tokenizer, instructions)
        return self.model.encode_text(self.tokenizer.encode(instructions, self.device))

    def eps_fn(self, image_latents: torch.Tensor, instructions: list[str], text_guidance: float = DEFAULT_TEXT_GUIDANCE,
               image_guidance: float = DEFAULT_IMAGE_GUIDANCE, negative_prompts: list[str] | None = None):
        """The eps_fn(z_t, t) of eq. 3 for input latents (B, 4, 8, 8) and B instructions; a negative instruction
        takes the place of the empty one."""
        context = self.encode_instructions(instructions)
        uncond = self.encode_instructions(negative_prompts if negative_prompts is not None else [""] * len(instructions))
        return instruct_guided_eps(self.model.unet, self.schedule, self.prediction, image_latents, context, uncond,
                                   image_guidance, text_guidance)

    def edited_captions(self, images: torch.Tensor, instructions: list[str]) -> list[str]:
        """The caption after the edit, for the img2img baseline: "a three" for "turn it into a 3"; for a style
        edit the input's digit as the course classifier reads it, with the requested side ("a thick seven")."""
        from ..metrics import load_classifier

        asked = [read_instruction(text) for text in instructions]
        for text, a in zip(instructions, asked):
            if a is None:
                raise ValueError(f"the img2img baseline samples the edited caption, and {text!r} is not one of the "
                                 "course's instructions; pass caption=\"a thick seven\" (the caption after the edit)")
        digits = [None] * len(images)
        if any(kind != "digit" for kind, _ in asked):
            classifier = load_classifier(device=images.device)
            digits = classifier(images.float()).argmax(1).tolist()
        return [edited_caption(kind, target, d) for (kind, target), d in zip(asked, digits)]

    @torch.no_grad()
    def edit(self, images, instruction, text_guidance: float = DEFAULT_TEXT_GUIDANCE,
             image_guidance: float = DEFAULT_IMAGE_GUIDANCE, steps: int = DEFAULT_STEPS, sampler: str | None = None,
             negative_prompt=None, strength: float = 1.0, variant: str = "full", caption=None,
             generator: torch.Generator | None = None, return_trajectory: bool = False, callback=None):
        """Edit digits by an instruction. Returns the edited digits (N, 1, 28, 28) in [-1, 1].

        images:          (N, 1, 28, 28) in [-1, 1], or one picture file of any size and mode (`as_images`)
        instruction:     one for all images, or N ("turn it into a 3", "make it thicker")
        text_guidance:   s_T of eq. 3, towards the instruction (1: none); the text model's CFG scale for img2img
        image_guidance:  s_I of eq. 3, towards the input (1: none); unused by img2img
        steps:           sampling steps, 2..1000 (of which round(strength * steps) are run)
        sampler:         "ddim" or "ddpm"; None: the variant's (a contradicting one is refused)
        negative_prompt: instruction(s) to steer away from, in place of the empty one (img2img: a caption)
        strength:        the "temperature", in (0, 1]: 1 starts from pure noise; below 1 the input's latent is
                         noised to where that share of the steps remains (SDEdit, lesson 6)
        variant:         "full", "no-ddim", "no-cfg", "no-cfg-no-ddim" or "img2img" (`VARIANTS`)
        caption:         img2img only: the edited caption(s) to sample; None: written from the instruction
        return_trajectory: also return {"t": timesteps, "x0": (S, N, 1, 28, 28) the decoded estimate of the
                         result at each step} (the reverse process)
        callback:        called by the sampler after each step, callback(i, t, t_prev, z_prev, z0_hat) (progress;
                         an exception raised in it stops the edit)
        """
        x = as_images(images).to(self.device)
        n = len(x)
        instructions = _one_or_each(instruction, n, "instruction")
        negatives = _one_or_each(negative_prompt, n, "negative prompt") if negative_prompt is not None else None
        sampler = check_variant(variant, sampler)
        check_steps(steps)
        if steps > self.schedule.T:
            raise ValueError(f"steps must be at most the schedule's {self.schedule.T} timesteps, got {steps}")
        check_dual_scales(image_guidance, text_guidance)
        check_strength(strength)
        if round(strength * steps) < 1:
            raise ValueError(f"strength {strength:g} of {steps} steps runs no step: give a strength of at least "
                             f"{1 / steps:.3g}, one step (or more steps)")
        self.model.eval()
        self.vae.eval()
        z_I = self.vae.encode_latents(x).float()  # (N, 4, 8, 8), scaled
        if variant == "img2img":
            captions = self.edited_captions(x, instructions) if caption is None else _one_or_each(caption, n, "caption")
            eps_fn = self.text_model().eps_fn(captions, text_guidance, negatives)  # raises naming unknown words
        elif VARIANTS[variant][1]:
            eps_fn = self.eps_fn(z_I, instructions, text_guidance, image_guidance, negatives)
        else:
            eps_fn = self.eps_fn(z_I, instructions, 1.0, 1.0)
        if not return_trajectory:
            return self.vae.decode_latents(self.reverse(eps_fn, z_I, strength, steps, sampler, generator,
                                                        callback=callback))
        z0, trajectory = self.reverse(eps_fn, z_I, strength, steps, sampler, generator, return_trajectory=True,
                                      callback=callback)
        images = self.vae.decode_latents(z0)
        S = trajectory["x0"].shape[0]
        x0 = self.vae.decode_latents(trajectory["x0"].flatten(0, 1).to(self.device)).cpu().view(S, n, 1, 28, 28)
        return images, {"t": trajectory["t"], "x0": x0}

    def reverse(self, eps_fn, z_I: torch.Tensor, strength: float, steps: int, sampler: str,
                generator: torch.Generator | None = None, return_trajectory: bool = False, callback=None):
        """The reverse process on latents from `strength` (1: pure noise; below: z_I noised as SDEdit does) by
        the course's one loop, latents not clipped. Returns z0 (N, 4, 8, 8), or (z0, trajectory)."""
        if strength == 1.0:
            zT, start_step = torch.randn(z_I.shape, generator=generator, device=z_I.device), 0
        else:
            zT, start_step = sdedit_start(self.schedule, z_I, strength, steps, generator=generator)
        return sample(eps_fn, None, self.schedule, sampler, steps, generator=generator, xT=zT, start_step=start_step,
                      return_trajectory=return_trajectory, progress=False, clip=None, callback=callback)


# ---------------------------------------------------------------- training and loading


def load_pairs_for_training(pairs) -> dict:
    """A pairs dict ({"inputs", "edited": (N, 1, 28, 28) in [-1, 1], "instructions": N strings}), a file
    written by `pairs.make_pairs`, or a list of such files (joined by `pairs.join_pairs`)."""
    if isinstance(pairs, (list, tuple)):
        from ..pairs import join_pairs
        return join_pairs([load_pairs_for_training(p) for p in pairs])
    if isinstance(pairs, (str, Path)):
        from ..pairs import load_pairs
        return load_pairs(pairs)
    for key in ("inputs", "edited", "instructions"):
        if key not in pairs:
            raise ValueError(f"pairs need 'inputs', 'edited' and 'instructions'; {key!r} is missing")
    if pairs["inputs"].shape != pairs["edited"].shape or len(pairs["inputs"]) != len(pairs["instructions"]):
        raise ValueError(f"pairs need inputs and edited images of one shape and one instruction per pair, got "
                         f"{tuple(pairs['inputs'].shape)}, {tuple(pairs['edited'].shape)} and "
                         f"{len(pairs['instructions'])} instructions")
    return pairs


def train_instruct(pairs, base=None, vae=None, steps: int | None = None, minutes: float | None = None, checkpoint=None,
                   device=None, seed: int = 0, batch_size: int | None = None, recipe: InstructRecipe = INSTRUCT_RECIPE,
                   progress: bool = True, **kwargs):
    """Train InstructPix2Pix from the lesson-7 text model on image pairs. Returns (InstructPix2Pix, history).

    pairs: a dict or a file of `pairs.make_pairs` (inputs, edited, instructions)
    base:  the lesson-7 LatentDiffusion to start from, or a text checkpoint path, or None for the shipped text.pt
           (with `vae`: a path, or None for the shipped vae.pt)
    The course loop `train.train` does the rest: EMA, checkpoints every 500 steps, Ctrl-C saves, and a run
    interrupted and started again with the same budget resumes exactly.
    """
    device = torch.device(device or "cpu")
    data = load_pairs_for_training(pairs)
    base_path = None if isinstance(base, LatentDiffusion) else base
    base = base if isinstance(base, LatentDiffusion) else load_text(base, vae=vae, device=device)
    base.to(device)
    torch.manual_seed(seed)
    model, tokenizer = from_text_model(base, torch.Generator().manual_seed(seed))
    check_words(tokenizer, list(dict.fromkeys(data["instructions"])))
    with torch.no_grad():  # the pairs as latents, once: [edited | input] along the channels (N, 8, 8, 8)
        z_out = base.vae.encode_latents(data["edited"].float().to(device)).float()
        z_in = base.vae.encode_latents(data["inputs"].float().to(device)).float()
    C = z_out.shape[1]
    instructions = list(data["instructions"])
    schedule, prediction = base.schedule, base.prediction

    def loss_fn(m, z, index, g):  # train.train hands over rows of `z` and their indices into the instructions
        return instruct_loss(m, z[:, :C], z[:, C:], [instructions[i] for i in index.tolist()], g, schedule,
                             tokenizer, recipe.p_drop, prediction)

    meta = {"model_name": MODEL_NAME, "unet_config": unet_config_dict(model.config),
            "text_config": asdict(model.text_encoder.config), "vocab": list(tokenizer.vocab[2:]),
            "prediction": prediction, "schedule": {"T": schedule.T, "kind": schedule.kind},
            "vae_scale_factor": float(base.vae.scale_factor), "p_drop": recipe.p_drop, "pairs": len(instructions),
            "text_checkpoint": str(base_path) if base_path is not None else None}
    ema, history = train(model, loss_fn, torch.cat([z_out, z_in], 1), torch.arange(len(instructions)), steps=steps,
                         minutes=minutes, batch_size=batch_size or recipe.batch_size, lr=recipe.lr,
                         warmup=recipe.warmup, ema_decay=recipe.ema_decay, seed=seed, checkpoint=checkpoint,
                         metadata=meta, progress=progress, **kwargs)
    ema.eval().requires_grad_(False)
    return InstructPix2Pix(base.vae, ema, schedule, tokenizer, prediction, text_pipe=base), history


def load(checkpoint=None, vae=None, text=None, device=None) -> InstructPix2Pix:
    """InstructPix2Pix from `checkpoint` (default: the shipped pix2pix.pt) with the VAE it was trained on (`vae`:
    a VAE, a path, or None for the shipped vae.pt). `text`: the lesson-7 model of the img2img baseline (a
    LatentDiffusion or a path; None: the one the checkpoint names, else the shipped text.pt), loaded when used."""
    path, state, vae = read_checkpoint(checkpoint, MODEL_NAME, vae)
    text_config = TextEncoderConfig(**state["text_config"])
    model = InstructModel(UNetConfig(**state["unet_config"]), text_config)
    _load_weights(model, state, path, MODEL_NAME)
    model.eval().requires_grad_(False)
    tokenizer = Tokenizer(vocab=state["vocab"], max_length=text_config.max_length)
    text_pipe = text if isinstance(text, LatentDiffusion) else None
    text_path = None if text_pipe is not None else (str(text) if text is not None else state.get("text_checkpoint"))
    pipe = InstructPix2Pix(vae, model, NoiseSchedule(**state["schedule"]), tokenizer, state.get("prediction", "v"),
                           text_pipe, text_path)
    return pipe.to(device or "cpu")
