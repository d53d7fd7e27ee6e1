"""The widgets of lesson 8: the attention-map viewer and the prompt-to-prompt panel."""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from ..data import to_unit
from ..editing.prompt_to_prompt import edit_prompt, sample_with_maps, word_maps
from ..utils import make_generator
from ..viz import show_images
from .common import Explorer

MEAN_OF_LAYERS = "mean of the layers"


def show_word_map(image: torch.Tensor, word_map: torch.Tensor, title: str = "", ax=None):
    """A digit (1, 28, 28) in [-1, 1] in grey with a word's attention map (28, 28) over it in colour."""
    if ax is None:
        _, ax = plt.subplots(figsize=(2.6, 2.6))
    ax.imshow(to_unit(image.float().cpu())[0], cmap="gray", vmin=0, vmax=1)
    ax.imshow(word_map.cpu(), cmap="jet", alpha=0.45)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return ax


def make_attention_viewer(pipe, prompt: str = "a thick seven leaning right", word: str = "seven", steps: int = 15,
                          guidance_scale: float = 3.0, seed: int = 0) -> Explorer:
    """Sample one digit for the prompt (text box, drawn on Enter) and seed, keeping its cross-attention maps
    (`sample_with_maps`, computed once per prompt and seed); pick a word of the prompt, scrub the denoising step
    and the layer (or the mean of the layers): the word's map, averaged over the heads, over the digit.
    A word that is not in the prompt, or an unknown word, is named in the output area.
    `last`: {"image": (1, 1, 28, 28), "map": (28, 28), "word", "step", "layer"}, or {"error": the message}."""
    layers = [m.name for m in pipe.model.unet.modules() if getattr(m, "is_cross", False)]
    controls = {
        "prompt": W.Text(value=prompt, description="prompt", continuous_update=False),
        "word": W.Text(value=word, description="word", continuous_update=False),
        "step": W.IntSlider(value=steps - 1, min=0, max=steps - 1, description="step", continuous_update=True),
        "layer": W.Dropdown(options=[MEAN_OF_LAYERS, *layers], value=MEAN_OF_LAYERS, description="layer"),
        "seed": W.IntSlider(value=seed, min=0, max=99, description="seed", continuous_update=False),
    }
    cache = {}

    def draw(prompt, word, step, layer, seed):
        try:
            if (prompt, seed) not in cache:
                cache.clear()  # one prompt at a time: the maps of a sample are a few MB
                cache[prompt, seed] = sample_with_maps(pipe, prompt, 1, steps, guidance_scale,
                                                       make_generator(seed, pipe.device))
        except ValueError as err:  # an unknown word: the message, not a traceback
            print(err)
            return {"error": str(err)}
        image, store, words = cache[prompt, seed]
        if word.strip() not in words:
            message = f"{word.strip()!r} is not a word of the prompt {prompt!r}: pick one of {sorted(words)}"
            print(message)
            return {"error": message}
        word = word.strip()
        maps, names = word_maps(store, words[word][0])  # (steps, layers, 28, 28), the prompt's row
        m = maps[step].mean(0) if layer == MEAN_OF_LAYERS else maps[step, names.index(layer)]
        fig, axes = plt.subplots(1, 2, figsize=(5.2, 2.8))
        show_images(image.cpu(), nrow=1, ax=axes[0], title=f"{prompt!r}, seed {seed}")
        show_word_map(image[0], m, f"{word!r}: step {step + 1}/{steps}\n{layer}", ax=axes[1])
        fig.tight_layout()
        return {"image": image, "map": m, "word": word, "step": step, "layer": layer}

    return Explorer(controls, draw)


def make_p2p_explorer(pipe, source: str = "a small seven leaning right", edited: str = "a small two leaning right",
                      n: int = 6, steps: int = 15, guidance_scale: float = 3.0, cross_fraction: float = 0.8,
                      self_fraction: float = 0.4) -> Explorer:
    """Prompt-to-prompt (`edit_prompt`): the source and edited prompts (text boxes, drawn on Enter), the share of
    steps whose cross-attention maps are the source's (word swap, or refine when a word is added) and whose
    self-attention maps are, a word of the edited prompt to re-weight and its scale, local blending, and the seed.
    Shows n images of the source, the edit with control, and the edit without control from the same noise.
    A bad edit (unknown word, a re-weighted word the edited prompt lacks, ...) is named in the output area.
    `last`: {"source", "edited", "baseline": (n, 1, 28, 28) each}, or {"error": the message}."""
    controls = {
        "source": W.Text(value=source, description="source", continuous_update=False),
        "edited": W.Text(value=edited, description="edited", continuous_update=False),
        "cross_fraction": W.FloatSlider(value=cross_fraction, min=0.0, max=1.0, step=0.1, description="cross steps",
                                        continuous_update=False),
        "self_fraction": W.FloatSlider(value=self_fraction, min=0.0, max=1.0, step=0.1, description="self steps",
                                       continuous_update=False),
        "reweight_word": W.Text(value="", description="re-weight", placeholder="(no word)", continuous_update=False),
        "reweight_scale": W.FloatSlider(value=2.0, min=0.0, max=5.0, step=0.25, description="scale",
                                        continuous_update=False),
        "local_blend": W.Checkbox(value=False, description="local blend"),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }

    def draw(source, edited, cross_fraction, self_fraction, reweight_word, reweight_scale, local_blend, seed):
        reweight = {reweight_word.strip(): reweight_scale} if reweight_word.strip() else None
        try:
            src, edt, base = edit_prompt(pipe, source, edited, n, cross_fraction, self_fraction, reweight,
                                         local_blend, steps, guidance_scale, make_generator(seed, pipe.device))
        except ValueError as err:  # unknown word, a word to re-weight that the prompt lacks, ...
            print(err)
            return {"error": str(err)}
        how = "word swap" if len(source.split()) == len(edited.split()) else "refine"
        extra = (f", {reweight_word.strip()!r} x {reweight_scale:g}" if reweight else "") + (", local blend" if local_blend else "")
        show_images(torch.cat([src, edt, base]).cpu(), nrow=n, row_labels=["source", "edited, control", "edited, none"],
                    title=f"{source!r} -> {edited!r}: {how} for {cross_fraction:.0%} of the steps, self-attention "
                          f"{self_fraction:.0%}{extra}", scale=0.9)
        return {"source": src, "edited": edt, "baseline": base}

    return Explorer(controls, draw)
