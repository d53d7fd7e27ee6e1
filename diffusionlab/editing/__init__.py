"""Editing with a trained diffusion model, without retraining (lesson 6).

Everything here changes *what the sampler is given*, never the network: a different starting point,
a different eps_fn, or a correction after each step. Each method has its own file, written to be read
next to `samplers.sample`:

    img2img      SDEdit (Meng et al. 2022): noise an image part way, then denoise it
    inpainting   RePaint (Lugmayr et al. 2022): fill a masked region, keeping the rest
    anagrams     Visual anagrams (Geng, Park & Owens 2024): one image, two readings under a view
    hybrid       Hybrid images (Geng et al. 2024, "Factorized Diffusion"): far and near follow two conditions
"""

from .anagrams import VIEWS, anagram_combine, anagram_eps, get_view
from .hybrid import FAR_SIGMA_PX, hybrid_eps, seen_from_afar, split_frequencies
from .inpainting import MASKS, check_mask, inpaint, inpaint_replace, make_mask, renoise
from .img2img import check_strength, sdedit, sdedit_start

__all__ = ["VIEWS", "MASKS", "anagram_combine", "anagram_eps", "get_view", "hybrid_eps", "seen_from_afar", "split_frequencies",
           "check_mask", "inpaint", "inpaint_replace", "make_mask", "renoise", "check_strength", "sdedit",
           "sdedit_start"]
