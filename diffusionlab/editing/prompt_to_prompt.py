"""Prompt-to-prompt: edit a generated image by editing its prompt, through the attention maps (lesson 8).

Hertz et al. 2022, "Prompt-to-Prompt Image Editing with Cross-Attention Control". The cross-attention
map M_t = softmax(Q K^T / sqrt(d)) of a text-to-image UNet says where each word acts (attention.py).
Sample the source prompt P and the edited prompt P* from the same noise, and let the edited image use
the source's maps where the prompts agree: the layout stays, the edited words change (sec. 3.2 and
Algorithm 1; the paper writes it with a threshold tau on t, which counts down):
    Edit(M_t, M_t*, t) = M_t    for the first `fraction` of the steps    (the source's maps)
                       = M_t*   afterwards                               (the edited prompt's own)

The controllers are attention hooks (`models.attention.set_attention_hook`), a few lines each:
    StoreMaps     keep every map, averaged over heads, per layer and step (the attention-map viewer;
                  `sample_with_maps` samples a prompt with one)
    ReplaceCross  word swap: the edited prompt's cross-attention maps := the source's   (sec. 3.2)
    InjectSelf    the edited prompt's self-attention maps := the source's (keeps the shape; the paper's code)
    Refine        a word added: copy the source's map through the alignment A_j, keep the new words' own
    Reweight      scale one token's column of the maps by a factor ("thick" x 2)
    LocalBlend    keep the source outside the region of the edited words (localized editing)
    Chain         several hooks in order, each seeing the maps the previous one returned

Batch layout. The source and the edited prompt are sampled together in one batch, so that at every step a
hook can copy maps from the source rows to the edited rows. The sampler's batch x_t is
    [source_1 .. source_n, edited_1 .. edited_n]                                         (2n, C, H, W)
(the same noise in both halves), and with classifier-free guidance the eps_fn runs the UNet once on
    [uncond(source), uncond(edited), cond(source), cond(edited)]   each n rows           (4n, C, H, W)
with the empty caption's tokens in the first 2n rows and the prompts' tokens in the last 2n. With
`guided=True` (the default) a controller reads the last 2n rows of each map (the prompts', as the
paper's code does) and leaves the unconditional ones alone; with `guided=False` the batch is [source,
edited] only. Either way the edited rows are the last n rows of the map.

Steps. A controller counts the calls of each attention module: the k-th call is step k, so the eps_fn
must call the UNet once per sampler step (classifier-free guidance batched, as `guidance.guided_eps`
does). Call `reset()` (or use `controlled(model, hook)`) before sampling again. Token positions are
plain indices into the text encoder's output, so the controllers do not depend on the tokenizer;
`align_tokens` turns two token lists into the refinement's alignment.

On the lesson-7 model. `edit_prompt(pipe, "a thick seven", "a thin seven", n=8)` does the whole edit with
a `pipelines.latent.LatentDiffusion`: it tokenizes both prompts (padded to the same length), picks the
controllers (`edit_controller`: word swap when the prompts have as many words, refine otherwise; self-
attention injection; re-weighting; local blending), samples source and edited prompt from the same noise
in the batch layout above with `samplers.sample` (DDIM, latents not clipped), and samples the edited
prompt once more from that noise without control: the baseline the edit is compared with.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Hashable, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ..models.attention import Attention, set_attention_hook
from ..pipelines.latent import DEFAULT_TEXT_GUIDANCE
from ..samplers import sample

# The course's word-swap setting, measured on the shipped text model (benchmarks/RESULTS.md, lesson 8: 180 digit
# swaps "a small A leaning right" -> "a small B leaning right", DDIM 25 steps, guidance 1.5): the source's
# cross-attention maps for the first 10% of the steps keep 96.7% of the edits reading as the new digit (98.3% without
# control) and bring them closer to their sources (pixel MSE 0.314 against 0.327). More steps keep more of the source
# but the digit changes less often: 92% read as the new digit at 20%, 82% at 40%, 73% at 80%; and at 20% "small" ->
# "large" lands on its side in 84% of 180 edits, against 86% at 10%. Self-attention is injected for half as many
# steps, as in the paper's code.
CROSS_FRACTION = 0.1
SELF_FRACTION = 0.05


def _check_fraction(fraction: float, name: str = "fraction",
                    meaning: str = "the share of the sampling steps to control") -> float:
    if not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ValueError(f"{name} is {meaning}, from 0 to 1, got {fraction!r}")
    return float(fraction)


def _check_steps(steps: int) -> int:
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be the sampler's number of steps (a positive integer), got {steps!r}")
    return steps


def edited_rows(probs: torch.Tensor, guided: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(source, edited) rows of a map (B, ...) in the batch layout of the module docstring, n rows each."""
    B = probs.shape[0]
    groups = 4 if guided else 2
    if B % groups:
        layout = "[uncond source, uncond edited, source, edited]" if guided else "[source, edited]"
        raise ValueError(f"prompt-to-prompt needs the batch {layout}, n rows each: a batch of {B} is not a "
                         f"multiple of {groups} (guided={guided}; pass guided={not guided} if that is the layout)")
    n = B // groups
    return probs[B - 2 * n : B - n], probs[B - n :]


class Controller:
    """An attention hook that knows the sampling step: `forward(probs, module, step)` does the work."""

    def __init__(self):
        self.calls = Counter()  # module -> how many times it has run: the step it is at

    def reset(self) -> None:
        self.calls.clear()

    def __call__(self, probs: torch.Tensor, module: Attention) -> torch.Tensor | None:
        step = self.calls[module]
        self.calls[module] += 1
        return self.forward(probs, module, step)

    def forward(self, probs: torch.Tensor, module: Attention, step: int) -> torch.Tensor | None:
        raise NotImplementedError


class EditController(Controller):
    """A controller that replaces the edited rows' maps, for the first round(fraction * steps) sampling
    steps, in the attention layers it acts on (cross or self). Subclasses write
    `edit(source, edited, module)`, with source and edited of shape (n, heads, N, M), returning the
    edited rows' new maps."""

    cross = True  # acts on cross-attention (True) or on self-attention (False)

    def __init__(self, steps: int, fraction: float = 1.0, guided: bool = True):
        super().__init__()
        self.until = round(_check_fraction(fraction) * _check_steps(steps))  # control steps 0 .. until-1
        self.guided = guided

    def forward(self, probs, module, step):
        if module.is_cross != self.cross or step >= self.until:
            return None
        source, edited = edited_rows(probs, self.guided)
        out = probs.clone()
        out[-len(edited) :] = self.edit(source, edited, module)
        return out

    def edit(self, source: torch.Tensor, edited: torch.Tensor, module: Attention) -> torch.Tensor:
        raise NotImplementedError


class ReplaceCross(EditController):
    """Word swap (sec. 3.2): the edited prompt attends where the source did. Both prompts must have their
    tokens at the same positions ("a thick seven" -> "a thin seven")."""

    def edit(self, source, edited, module):
        return source


class InjectSelf(EditController):
    """Self-attention injection: the edited image's positions attend to each other as the source's do,
    which keeps its shape (the paper's code, `self_replace_steps`)."""

    cross = False

    def edit(self, source, edited, module):
        return source


class Refine(EditController):
    """A word added or removed (sec. 3.2, "adding a new phrase"): alignment[j] = A_j is the source token
    that the edited token j shows, or -1 for a word the source does not have. Aligned tokens take the
    source's map M_t[:, :, A_j]; the new words keep their own map M_t*[:, :, j]. Both prompts are padded
    to the same number of tokens (one batch); `align_tokens` gives A from the two token lists."""

    def __init__(self, alignment: Sequence[int], steps: int, fraction: float = 1.0, guided: bool = True):
        super().__init__(steps, fraction, guided)
        self.alignment = torch.as_tensor(list(alignment), dtype=torch.long)  # (M,)

    def edit(self, source, edited, module):
        M = edited.shape[-1]
        if len(self.alignment) != M:
            raise ValueError(f"the alignment has {len(self.alignment)} entries, one per edited token; the maps "
                             f"have {M} tokens")
        A = self.alignment.to(source.device)
        aligned = (A >= 0).to(source.dtype)  # (M,) 1 where the source has the token
        return source[..., A.clamp(min=0)] * aligned + edited * (1 - aligned)  # (n, heads, N, M)


class Reweight(EditController):
    """Attention re-weighting (sec. 3.2): the column of `token` in the edited rows' cross-attention maps
    is multiplied by `scale` (the paper's code leaves the rows unnormalised, and so do we). Chained after
    ReplaceCross or Refine it scales the maps they copied, as the paper does."""

    def __init__(self, token: int | Sequence[int], scale: float, steps: int, fraction: float = 1.0,
                 guided: bool = True):
        super().__init__(steps, fraction, guided)
        self.tokens = [token] if isinstance(token, int) else list(token)
        if not isinstance(scale, (int, float)) or scale < 0:
            raise ValueError(f"scale multiplies a token's attention and must be >= 0 (1 = unchanged), got {scale!r}")
        self.scale = float(scale)

    def edit(self, source, edited, module):
        if not all(-edited.shape[-1] <= j < edited.shape[-1] for j in self.tokens):
            raise ValueError(f"tokens {self.tokens} are outside the {edited.shape[-1]} tokens of the prompt")
        weights = torch.ones(edited.shape[-1], device=edited.device, dtype=edited.dtype)
        weights[self.tokens] = self.scale
        return edited * weights


class StoreMaps(Controller):
    """Keep every map, averaged over the heads: maps[step][layer name] = (B, N, M) on the CPU, for all the
    rows of the batch (guided: the prompt's rows are the second half). `cross_only`: skip self-attention."""

    def __init__(self, cross_only: bool = True):
        super().__init__()
        self.cross_only = cross_only
        self.maps: list[dict[str, torch.Tensor]] = []
        self.cross_layers: list[str] = []  # names of the cross-attention layers, in the order they run

    def reset(self) -> None:
        super().reset()
        self.maps = []
        self.cross_layers = []

    def forward(self, probs, module, step):
        if self.cross_only and not module.is_cross:
            return None
        if module.is_cross and module.name not in self.cross_layers:
            self.cross_layers.append(module.name)
        while len(self.maps) <= step:
            self.maps.append({})
        self.maps[step][module.name] = probs.mean(dim=1).float().cpu()  # (B, N, M): the mean over heads
        return None


def word_maps(store: StoreMaps, token: int, row: int = -1, size: int = 28) -> tuple[torch.Tensor, list[str]]:
    """The map of one token, per step and cross-attention layer, upsampled to size x size (bilinear).

    token: the token's position in the text encoder's output; row: the batch row (-1: the last, which is
    the prompt's conditional row in a guided batch). Returns (maps (steps, layers, size, size), layer names).
    """
    if not store.maps:
        raise ValueError("the store is empty: set it as the attention hook and sample first")
    names = store.cross_layers
    out = []
    for step_maps in store.maps:
        per_layer = []
        for name in names:
            m = step_maps[name]  # (B, N, M)
            if not -m.shape[-1] <= token < m.shape[-1]:
                raise ValueError(f"token {token} is outside the {m.shape[-1]} tokens of the prompt")
            side = round(m.shape[1] ** 0.5)
            pic = m[row, :, token].reshape(1, 1, side, side)  # (1, 1, h, w): N = h * w positions, row-major
            per_layer.append(F.interpolate(pic, size=(size, size), mode="bilinear", align_corners=False)[0, 0])
        out.append(torch.stack(per_layer))
    return torch.stack(out), names


class LocalBlend(Controller):
    """Localized editing (the paper's blending of x_t, its code's LocalBlend): after every step, the
    edited image keeps the source outside a mask
        x_t* <- mask * x_t* + (1 - mask) * x_t
    where the mask is where the edited words act: their cross-attention maps at this step (summed over the
    words, averaged over heads and layers, upsampled to the image, dilated by `dilate` pixels, divided by
    the image's maximum) above `threshold`, for the source's words in the source image and the edited
    words in the edited one, united. Use it as a hook (it reads the maps) and pass `callback` to
    `samplers.sample` (it blends x_t). threshold 0: the mask is everything (no blending); 1: nothing.

    source_tokens, edited_tokens: positions of the words in each prompt (e.g. "seven" and "two").
    """

    def __init__(self, source_tokens: Sequence[int], edited_tokens: Sequence[int], threshold: float = 0.3,
                 dilate: int = 1, guided: bool = True):
        super().__init__()
        self.source_tokens, self.edited_tokens = list(source_tokens), list(edited_tokens)
        if not self.source_tokens or not self.edited_tokens:
            raise ValueError("LocalBlend needs the positions of at least one word in each prompt, got "
                             f"{self.source_tokens} and {self.edited_tokens}")
        self.threshold = _check_fraction(threshold, "threshold",
                                         "the fraction of the map's maximum above which a pixel is in the mask")
        self.dilate, self.guided = dilate, guided
        self.step_maps: dict[Attention, tuple[torch.Tensor, torch.Tensor]] = {}  # this step's maps, per layer

    def reset(self) -> None:
        super().reset()
        self.step_maps = {}

    def forward(self, probs, module, step):
        if module.is_cross:
            source, edited = edited_rows(probs, self.guided)  # (n, heads, N, M) each
            self.step_maps[module] = (source[..., self.source_tokens].sum(-1).mean(1),  # (n, N)
                                           edited[..., self.edited_tokens].sum(-1).mean(1))
        return None

    def mask(self, size: tuple[int, int]) -> torch.Tensor:
        """(2, n, 1, H, W) booleans: the source's and the edited words' masks at this step, before the union."""
        if not self.step_maps:
            raise ValueError("LocalBlend has seen no cross-attention map: set it as the attention hook as well")
        layers = []
        for source, edited in self.step_maps.values():
            m = torch.stack([source, edited])  # (2, n, N)
            side = round(m.shape[-1] ** 0.5)
            m = m.reshape(2 * m.shape[1], 1, side, side)  # (2n, 1, h, w)
            layers.append(F.interpolate(m, size=size, mode="bilinear", align_corners=False))
        m = torch.stack(layers).mean(0)  # (2n, 1, H, W): the mean over layers
        k = self.dilate
        m = F.max_pool2d(m, 2 * k + 1, stride=1, padding=k)  # grow the region by k pixels
        m = m / m.amax(dim=(2, 3), keepdim=True)  # each image's strongest position is 1
        return (m > self.threshold).reshape(2, -1, 1, *size)

    def callback(self, i, t, t_prev, x, x0):
        """samplers.sample's callback: x (2n, C, H, W) = [source, edited] -> edited blended into the source."""
        source, edited = x.chunk(2)
        m = self.mask(tuple(x.shape[-2:])).any(0).to(x.device)  # (n, 1, H, W): the union of the two masks
        return torch.cat([source, torch.where(m, edited, source)])


class Chain(Controller):
    """Several hooks in order; each sees the map the previous ones returned (store after replace, ...)."""

    def __init__(self, *hooks):
        super().__init__()
        self.hooks = hooks

    def reset(self) -> None:
        for h in self.hooks:
            if hasattr(h, "reset"):
                h.reset()

    def __call__(self, probs, module):
        replaced = None
        for h in self.hooks:
            out = h(probs if replaced is None else replaced, module)
            replaced = out if out is not None else replaced
        return replaced


@contextmanager
def controlled(model: torch.nn.Module, hook):
    """`with controlled(unet, controller): sample(...)`: the hook is reset, set on every attention
    module of the model, and removed afterwards."""
    if hasattr(hook, "reset"):
        hook.reset()
    set_attention_hook(model, hook)
    try:
        yield hook
    finally:
        set_attention_hook(model, None)


def align_tokens(source: Sequence[Hashable], edited: Sequence[Hashable]) -> list[int]:
    """The refinement's alignment A: for each edited token, the index of the same token in the source, or
    -1 where the edited prompt has a word the source lacks, matched in order (the longest common
    subsequence, as difflib finds it). Tokens are words or ids, padding included.

    >>> align_tokens(["a", "seven"], ["a", "thick", "seven"])
    [0, -1, 1]
    """
    A = [-1] * len(edited)
    matcher = difflib.SequenceMatcher(a=list(source), b=list(edited), autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            A[block.b + k] = block.a + k
    return A


def swapped_tokens(source: Sequence[Hashable], edited: Sequence[Hashable]) -> list[int]:
    """Positions where a word swap changes the prompt ("a thick seven" -> "a thin seven": [1]): the words
    for LocalBlend. Word swap needs the tokens at the same positions, so the lists must be as long."""
    if len(source) != len(edited):
        raise ValueError(f"a word swap keeps every other token in place: the prompts have {len(source)} and "
                         f"{len(edited)} tokens; for a word added or removed use Refine with align_tokens")
    return [j for j, (a, b) in enumerate(zip(source, edited)) if a != b]


# ---------------------------------------------------------------- on the lesson-7 pipeline


def _word_positions(vocab: Sequence[str], ids: Sequence[int]) -> list[int]:
    """Positions of the words in a padded token list: every token but the start and the padding."""
    return [j for j, i in enumerate(ids) if vocab[i] not in ("<start>", "<pad>")]


def edit_controller(vocab: Sequence[str], source_ids: Sequence[int], edited_ids: Sequence[int], steps: int,
                    cross_fraction: float = CROSS_FRACTION, self_fraction: float = SELF_FRACTION,
                    reweight: dict[str, float] | None = None, local_blend: bool = False, guided: bool = True,
                    threshold: float = 0.3) -> tuple[Chain, LocalBlend | None]:
    """The controllers for one edit, from the two prompts' token ids (padded to the same length; vocab[id]
    is the token's word):

      * InjectSelf for the first self_fraction of the steps;
      * ReplaceCross (word swap) for the first cross_fraction when the prompts have as many words, else
        Refine with `align_tokens` (a word added or removed);
      * Reweight for each {word: scale} of `reweight` (a word of the edited prompt), for the same steps;
      * with local_blend, a LocalBlend on the changed words (the words without a partner in
        `align_tokens`; where a prompt has none, for a word only added, all of its words), reading the
        maps before they are replaced.
    Returns (hook, blend): set the hook on the UNet, pass blend.callback to the sampler (None without blending).
    """
    if len(source_ids) != len(edited_ids):
        raise ValueError(f"both prompts must be padded to the same length (one batch), got {len(source_ids)} "
                         f"and {len(edited_ids)} tokens")
    source_words, edited_words = _word_positions(vocab, source_ids), _word_positions(vocab, edited_ids)
    hooks = []
    if self_fraction:
        hooks.append(InjectSelf(steps, self_fraction, guided))
    if len(source_words) == len(edited_words):
        hooks.append(ReplaceCross(steps, cross_fraction, guided))
    else:
        hooks.append(Refine(align_tokens(source_ids, edited_ids), steps, cross_fraction, guided))
    for word, scale in (reweight or {}).items():
        positions = [j for j in edited_words if vocab[edited_ids[j]] == word]
        if not positions:
            prompt = " ".join(vocab[edited_ids[j]] for j in edited_words)
            raise ValueError(f"cannot re-weight {word!r}: it is not a word of the edited prompt {prompt!r}")
        hooks.append(Reweight(positions, scale, steps, cross_fraction, guided))
    blend = None
    if local_blend:
        A = align_tokens(source_ids, edited_ids)
        added = [j for j in edited_words if A[j] < 0]
        removed = [i for i in source_words if i not in A]
        blend = LocalBlend(removed or source_words, added or edited_words, threshold, guided=guided)
        hooks.insert(0, blend)  # first: it reads the maps each prompt makes itself
    return Chain(*hooks), blend


@torch.no_grad()
def edit_prompt(pipe, source_prompt: str | Sequence[str], edited_prompt: str | Sequence[str], n: int = 1,
                cross_fraction: float = CROSS_FRACTION, self_fraction: float = SELF_FRACTION,
                reweight: dict[str, float] | None = None, local_blend: bool = False, steps: int = 50,
                guidance_scale: float = DEFAULT_TEXT_GUIDANCE, generator: torch.Generator | None = None,
                threshold: float = 0.3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prompt-to-prompt with a lesson-7 `LatentDiffusion` (needs .tokenizer, .model.unet, .eps_fn, .vae,
    .schedule): n images of the source prompt, the same n edited by the edited prompt through the
    attention maps, and the baseline, the edited prompt sampled from the same noise without control.
    The prompts may be lists of n pairs edited at once ("a small seven ..." -> "a small two ...", "a small
    one ..." -> "a small six ..."), as long as every pair changes the same token positions.

    cross_fraction: the share of the steps with the source's cross-attention maps (word swap or refine;
                    re-weighting acts on the same steps); self_fraction: with its self-attention maps
    reweight:       {word of the edited prompt: scale}, e.g. {"thick": 2.0}; 1 changes nothing
    local_blend:    keep the source outside the changed words' region (`LocalBlend` with `threshold`)
    Sampling is DDIM (eta = 0, `steps` steps) with classifier-free guidance `guidance_scale` (1: none).
    Returns (source, edited, baseline), each (n, 1, 28, 28) in [-1, 1]. Unknown words raise a ValueError
    naming them (the tokenizer's).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of images, got {n!r}")
    _check_fraction(cross_fraction, "cross_fraction")
    _check_fraction(self_fraction, "self_fraction")
    sources = [source_prompt] * n if isinstance(source_prompt, str) else list(source_prompt)
    edits = [edited_prompt] * n if isinstance(edited_prompt, str) else list(edited_prompt)
    if len(sources) != n or len(edits) != n:
        raise ValueError(f"give one prompt or n = {n} prompts of each kind, got {len(sources)} and {len(edits)}")
    tokens = pipe.tokenizer.encode(sources + edits).tolist()  # (2n, L): all padded to the same length
    vocab = pipe.tokenizer.vocab
    hook, blend = edit_controller(vocab, tokens[0], tokens[n], _check_steps(steps), cross_fraction, self_fraction,
                                  reweight, local_blend, guided=guidance_scale != 1.0, threshold=threshold)
    layout = [(align_tokens(a, b), [vocab[i] for i in b if i > 1 and vocab[i] in (reweight or {})])
              for a, b in zip(tokens[:n], tokens[n:])]
    if any(x != layout[0] for x in layout):
        raise ValueError("every pair of prompts edited at once must change the same token positions (one controller "
                         f"for all): {sources[0]!r} -> {edits[0]!r} and the others differ; edit them separately")
    pipe.model.eval()
    pipe.vae.eval()
    device = pipe.device
    z = torch.randn((n, *pipe.vae.config.latent_shape), generator=generator,
                    device=generator.device if generator is not None else device).to(device)  # one noise for all
    # 1. source and edited prompt together: the batch [source x n, edited x n] (CFG doubles it in eps_fn)
    eps_fn = pipe.eps_fn(sources + edits, guidance_scale)
    with controlled(pipe.model.unet, hook):
        z0 = sample(eps_fn, None, pipe.schedule, "ddim", steps, xT=torch.cat([z, z]), progress=False, clip=None,
                    callback=blend.callback if blend is not None else None)
    # 2. the baseline: the edited prompt alone, from the same noise
    z0_base = sample(pipe.eps_fn(edits, guidance_scale), None, pipe.schedule, "ddim", steps, xT=z,
                     progress=False, clip=None)
    source, edited = pipe.vae.decode_latents(z0).chunk(2)
    return source, edited, pipe.vae.decode_latents(z0_base)


@torch.no_grad()
def sample_with_maps(pipe, prompt: str, n: int = 1, steps: int = 50, guidance_scale: float = DEFAULT_TEXT_GUIDANCE,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, StoreMaps, dict[str, list[int]]]:
    """Sample n images of `prompt` with a lesson-7 `LatentDiffusion` (DDIM, latents not clipped) and keep every
    cross-attention map on the way (`StoreMaps`). Returns (images (n, 1, 28, 28) in [-1, 1], the store, words):
    words maps each word of the prompt to its token positions, for `word_maps(store, token, row)`. Image i's maps
    are in batch row n + i with guidance (the batch is [uncond x n, prompt x n]) and row i without (scale 1)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of images, got {n!r}")
    ids = pipe.tokenizer.encode([prompt])[0].tolist()  # raises a ValueError naming an unknown word
    vocab = pipe.tokenizer.vocab
    words: dict[str, list[int]] = {}
    for j in _word_positions(vocab, ids):
        words.setdefault(vocab[ids[j]], []).append(j)
    pipe.model.eval()
    pipe.vae.eval()
    store = StoreMaps()
    with controlled(pipe.model.unet, store):
        z0 = sample(pipe.eps_fn([prompt] * n, guidance_scale), (n, *pipe.vae.config.latent_shape), pipe.schedule,
                    "ddim", _check_steps(steps), generator=generator, device=pipe.device, progress=False, clip=None)
    return pipe.vae.decode_latents(z0), store, words
