"""Fine-tuning the lesson-7 text model on printed digits: full fine-tuning and LoRA (lesson 8).

The lesson-7 model (`pipelines.latent`) has only seen handwriting. Here it learns a new style from a few
hundred printed digits (`printed.make_printed`), captioned with new words ("a printed seven", "a serif 3",
"a mono two": `printed.captions`), as Stable Diffusion is fine-tuned on a small set of pokemon:

  1. new words: the tokenizer gets STYLE_WORDS after its old words, so every old word keeps its id, and
     the text encoder's token embedding grows by one row per new word (`models.instruct.grow_token_embedding`);
  2. the printed digits are encoded once by the (frozen) VAE: the model sees latents, as in lesson 7;
  3. the printed digits are mixed with as many handwritten training digits, captioned as in lesson 7
     ("prior preservation", Ruiz et al. 2023, DreamBooth): if every caption said "printed", the word would
     carry nothing (the model learns to ignore it) and "a seven" would drift to print as well; with both,
     "printed" is what tells the two apart and the handwriting is rehearsed;
  4. training is the course loop (`train.train`: EMA, checkpoints, resuming) on lesson 7's loss, with a
     fresh caption for every image at every step (`pipelines.latent.captioned_diffusion_loss`), either
       full   every weight of the text encoder and the UNet moves (a small learning rate), or
       LoRA   (Hu et al. 2021, `models.lora`) everything is frozen except a rank-r update B A of the
              attention projections to_q, to_k, to_v, to_out of every attention module, an update of
              every 3 x 3 convolution of the UNet (rank 3; the strokes are drawn there: on the first lesson-7 model
              attention alone reached 76.5% of "a printed {d}" read right, against 90.0% for full fine-tuning), and the new words'
              embedding rows (the old rows are held: their gradient is zeroed), a few percent of the weights;
     or, for comparison, from scratch: a fresh model of the same shape trained on the printed set only.
The checkpoint (model name "text-printed") keeps the vocabulary and the LoRA rank; `load` rebuilds the
model, loads the EMA weights and merges the LoRA update into the base weights (`merge_lora`), so the
fine-tuned model samples as fast as the original:

    pipe, history = finetune_text(steps=1000, lora=2, checkpoint="checkpoints/text-printed.pt")
    pipe = load("checkpoints/text-printed.pt")
    pipe.sample(["a printed seven", "a seven"], guidance_scale=3.0)     # printed, and still handwritten
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch

from . import printed
from .captions import ATTRIBUTES, make_captions
from .data import load_mnist
from .models.instruct import grow_token_embedding
from .models.lora import add_conv_lora, add_lora, count_trainable, lora_parameters, merge_lora
from .models.text_encoder import TextEncoderConfig, Tokenizer
from .models.unet import UNetConfig
from .models.unet import config_dict as unet_config_dict
from .pipelines.latent import (LatentDiffusion, TextToLatent, _load_weights, captioned_diffusion_loss,
                               latent_training_data, read_checkpoint)
from .pipelines.latent import load as load_text
from .schedules import NoiseSchedule
from .train import train

MODEL_NAME = "text-printed"
STYLE_WORDS = ("printed", *printed.STYLES)  # the words the printed captions add: printed, sans, serif, mono


@dataclass
class FinetuneRecipe:
    """How the course fine-tunes the text model on printed digits (`benchmarks/prompt_to_prompt.py` compares them)."""

    n_images: int = 500  # printed digits in the training set (make_printed's seed: data_seed)
    data_seed: int = 0
    prior_images: int = 500  # handwritten training digits mixed in with lesson 7's captions (0: printed only)
    # measured on 500 printed + 500 handwritten digits, 1000 steps (benchmarks/prompt_to_prompt.py): full at 2e-4
    # for 300 steps left the new word unlearnt ("a printed seven" drew what "a seven" draws); at 1e-3, 87% of
    # "a printed {d}" read right, FD 45 to printed digits against 399 for "a {d}"
    lr: float = 1e-3  # full fine-tuning
    scratch_lr: float = 2e-3  # from scratch: lesson 7's rate
    lora_lr: float = 1e-2  # LoRA: only the small matrices and the new words move (attention and convolutions at
    #                        5e-3 read 81.0% right, at 1e-2 85.0%; attention only: 5e-3 and 1e-2 the same)
    lora_alpha: float | None = None  # None: alpha = rank, an update scale of 1
    # LoRA also on the UNet's 3 x 3 convolutions, at this rank (None: attention only). Measured on the first lesson-7
    # model (the recipe's choices were made there; RESULTS.md has the current model's figures), 1000 steps at 5e-3,
    # 200 samples: attention r4 alone 76.5% of "a printed {d}" read right (2.2% of the weights trainable); with
    # norms and biases 74.5% (3.0%); attention r4 + convolutions r2 80.5% (4.5%), r4 + r4 83.0% (6.8%, over 5%),
    # r2 + r3 81.0% (4.6%); r4 + r2 for 2000 steps 80.0%. Full fine-tuning: 90.0%. (The shares are of the current
    # model's own 578,788 parameters, new words included, LoRA's matrices not.)
    lora_conv_rank: int | None = 3
    batch_size: int = 64
    ema_decay: float = 0.99  # a short run: a short EMA
    warmup: int = 20
    p_uncond: float = 0.1


FINETUNE_RECIPE = FinetuneRecipe()


def extend_vocabulary(pipe: LatentDiffusion, new_words=STYLE_WORDS, generator: torch.Generator | None = None) -> list[str]:
    """Add the words of `new_words` the tokenizer lacks, after its old ones (so every old id stays), and
    grow the text encoder's token embedding by a row for each, in place. Returns the words added."""
    added = [w for w in dict.fromkeys(new_words) if w not in pipe.tokenizer.ids]
    if added:
        encoder = pipe.model.text_encoder
        pipe.tokenizer = Tokenizer(vocab=[*pipe.tokenizer.vocab[2:], *added], max_length=pipe.tokenizer.max_length)
        encoder.token_emb = grow_token_embedding(encoder.token_emb, len(pipe.tokenizer), generator).to(
            encoder.pos_emb.device)
        encoder.config.vocab_size = len(pipe.tokenizer)
    return added


def hold_rows(embedding: torch.nn.Embedding, first_new: int) -> None:
    """Train only the rows from `first_new` on: the gradient of the rows before it is zeroed (with the loop's
    AdamW and no weight decay, a row with zero gradient does not move)."""
    embedding.weight.requires_grad_(True)
    mask = torch.zeros(embedding.num_embeddings, 1, device=embedding.weight.device)
    mask[first_new:] = 1
    embedding.weight.register_hook(lambda grad: grad * mask)


PRINTED, HANDWRITTEN = 0, 1  # codes[:, 0]: which set an image comes from


def printed_codes(data: dict) -> torch.Tensor:
    """(N, 5) long: PRINTED, each printed digit's label, its style (index into printed.STYLES), 0, 0."""
    styles = torch.tensor([printed.STYLES.index(s) for s in data["styles"]])
    zeros = torch.zeros_like(styles)
    return torch.stack([torch.full_like(styles, PRINTED), data["labels"].long(), styles, zeros, zeros], dim=1)


def handwritten_codes(codes: torch.Tensor) -> torch.Tensor:
    """(N, 5) long: HANDWRITTEN and lesson 7's codes (label and the side of each attribute, `latent.training_codes`)."""
    return torch.cat([torch.full_like(codes[:, :1], HANDWRITTEN), codes], dim=1)


def write_captions(codes: torch.Tensor, generator: torch.Generator) -> list[str]:
    """A fresh caption for each row of codes (N, 5): printed rows as `printed.captions` ("a serif 3"),
    handwritten rows as lesson 7's (`captions.make_captions`: "a thick seven")."""
    codes = codes.cpu()
    hand = codes[:, 0] == HANDWRITTEN
    out = [""] * len(codes)
    seed = int(torch.randint(2**31, (1,), generator=generator))
    rows = (~hand).nonzero().flatten().tolist()
    for i, text in zip(rows, printed.captions(codes[rows, 1].tolist(),
                                              [printed.STYLES[k] for k in codes[rows, 2].tolist()], seed)):
        out[i] = text
    rows = hand.nonzero().flatten().tolist()
    if rows:
        c = codes[rows]
        texts = make_captions(c[:, 1], {name: c[:, 2 + j] for j, name in enumerate(ATTRIBUTES)}, generator)
        for i, text in zip(rows, texts):
            out[i] = text
    return out


def finetune_loss(model, z0, codes, generator, schedule, tokenizer, p_uncond=0.1, prediction="eps"):
    """Lesson 7's loss with the fine-tuning set's captions (codes (B, 5)), written fresh each step."""
    return captioned_diffusion_loss(model, z0, lambda g: write_captions(codes, g), generator, schedule, tokenizer,
                                    p_uncond, prediction)


def prepare(base: LatentDiffusion, lora: int | None = None, from_scratch: bool = False,
            recipe: FinetuneRecipe = FINETUNE_RECIPE, seed: int = 0) -> LatentDiffusion:
    """A copy of `base`'s model, ready to train: vocabulary extended; with `lora`, frozen but for the LoRA
    matrices of the attention projections and the new words' embeddings; with `from_scratch`, a fresh model
    of the same shape. Returns the pipeline (same VAE and schedule) around it."""
    if lora is not None and from_scratch:
        raise ValueError("LoRA adapts a trained model: give lora or from_scratch, not both")
    g = torch.Generator().manual_seed(seed)
    model = copy.deepcopy(base.model)  # the base pipeline is left as it was
    if from_scratch:
        torch.manual_seed(seed)
        model = TextToLatent(model.config, TextEncoderConfig(**asdict(model.text_encoder.config)))
    model = model.to(base.device).train().requires_grad_(True)
    pipe = LatentDiffusion(base.vae, model, base.schedule, Tokenizer(base.tokenizer.vocab[2:], base.tokenizer.max_length),
                           base.prediction)
    old = len(pipe.tokenizer)
    extend_vocabulary(pipe, STYLE_WORDS, g)
    if lora is not None:
        add_lora(model.unet, lora, recipe.lora_alpha, generator=g)  # the UNet's self- and cross-attention
        add_lora(model.text_encoder, lora, recipe.lora_alpha, generator=g)  # and the text encoder's
        if recipe.lora_conv_rank:
            add_conv_lora(model.unet, recipe.lora_conv_rank, generator=g)  # and the UNet's convolutions
        hold_rows(model.text_encoder.token_emb, old)  # the new words learn their embeddings
    return pipe


def finetune_text(base=None, vae=None, lora: int | None = None, from_scratch: bool = False,
                  steps: int | None = None, minutes: float | None = None, checkpoint=None, device=None, seed: int = 0,
                  batch_size: int | None = None, recipe: FinetuneRecipe = FINETUNE_RECIPE, data: dict | None = None,
                  progress: bool = True, **kwargs):
    """Fine-tune the text model on printed digits with the course loop. Returns (LatentDiffusion, history):
    the EMA weights with LoRA merged, and the extended tokenizer.

    base: a LatentDiffusion, a text checkpoint path, or None for the shipped text.pt (with `vae`: a path, or
          None for the shipped vae.pt); lora: the rank r of LoRA, or None for full fine-tuning;
    data: the printed set, make_printed's dict (default: recipe.n_images digits from recipe.data_seed).
    history also holds "trainable" and "parameters" (at the start: the parameters that learn, and those of the
    model itself, new words included and LoRA's matrices not, so trainable / parameters is the share of full
    fine-tuning's parameters that a LoRA run trains).
    """
    device = torch.device(device or "cpu")
    if lora is not None and (not isinstance(lora, int) or lora < 1):
        raise ValueError(f"lora is the rank of the LoRA update, a positive integer, got {lora!r}")
    base = base if isinstance(base, LatentDiffusion) else load_text(base, vae=vae, device=device)
    base.to(device)
    base_vocab = len(base.tokenizer)
    pipe = prepare(base, lora, from_scratch, recipe, seed)
    data = data if data is not None else printed.make_printed(recipe.n_images, seed=recipe.data_seed)
    with torch.no_grad():
        z0 = pipe.vae.encode_latents(data["images"].to(device)).float()  # (N, 4, 8, 8), scaled
    codes = printed_codes(data)
    if recipe.prior_images:  # handwritten digits with lesson 7's captions, measured on what their latents decode to
        x, y = load_mnist("train")
        pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(recipe.data_seed))[:recipe.prior_images]
        z_hand, hand = latent_training_data(pipe.vae, x[pick].to(device), y[pick])
        z0, codes = torch.cat([z0, z_hand]), torch.cat([codes, handwritten_codes(hand)])
    model, tokenizer, schedule = pipe.model, pipe.tokenizer, pipe.schedule
    trainable, total = count_trainable(model)
    total -= sum(p.numel() for p in lora_parameters(model))  # the model's own size: LoRA's matrices are extra
    if lora is not None:  # the held embedding rows have requires_grad but do not move
        trainable -= base_vocab * model.text_encoder.token_emb.embedding_dim

    def loss_fn(m, z, c, g):
        return finetune_loss(m, z, c, g, schedule, tokenizer, recipe.p_uncond, pipe.prediction)

    meta = {"model_name": MODEL_NAME, "unet_config": unet_config_dict(model.config),
            "text_config": asdict(model.text_encoder.config), "vocab": list(tokenizer.vocab[2:]),
            "lora_rank": lora, "lora_alpha": recipe.lora_alpha, "from_scratch": from_scratch,
            "lora_conv_rank": recipe.lora_conv_rank if lora is not None else None,
            "prediction": pipe.prediction, "schedule": {"T": schedule.T, "kind": schedule.kind},
            "vae_scale_factor": float(pipe.vae.scale_factor),
            "data": {"n_images": len(data["images"]), "prior_images": recipe.prior_images, "seed": recipe.data_seed}}
    lr = recipe.lora_lr if lora is not None else (recipe.scratch_lr if from_scratch else recipe.lr)
    ema, history = train(model, loss_fn, z0, codes, steps=steps, minutes=minutes,
                         batch_size=batch_size or recipe.batch_size, lr=lr, warmup=recipe.warmup,
                         ema_decay=recipe.ema_decay, seed=seed, checkpoint=checkpoint, metadata=meta,
                         progress=progress, **kwargs)
    merge_lora(ema)
    ema.eval().requires_grad_(False)
    history["trainable"], history["parameters"] = trainable, total
    return LatentDiffusion(pipe.vae, ema, schedule, tokenizer, pipe.prediction), history


def load(checkpoint=None, vae=None, device=None) -> LatentDiffusion:
    """A fine-tuned text model (default: the shipped text-printed.pt), LoRA merged, with its vocabulary."""
    path, state, vae = read_checkpoint(checkpoint, MODEL_NAME, vae)
    text_config = TextEncoderConfig(**state["text_config"])
    model = TextToLatent(UNetConfig(**state["unet_config"]), text_config)
    if state.get("lora_rank"):
        add_lora(model.unet, state["lora_rank"], state.get("lora_alpha"))
        add_lora(model.text_encoder, state["lora_rank"], state.get("lora_alpha"))
        if state.get("lora_conv_rank"):
            add_conv_lora(model.unet, state["lora_conv_rank"])
    _load_weights(model, state, path, MODEL_NAME)
    merge_lora(model)
    model.eval().requires_grad_(False)
    tokenizer = Tokenizer(vocab=state["vocab"], max_length=text_config.max_length)
    pipe = LatentDiffusion(vae, model, NoiseSchedule(**state["schedule"]), tokenizer, state.get("prediction", "eps"))
    return pipe.to(device or "cpu")

