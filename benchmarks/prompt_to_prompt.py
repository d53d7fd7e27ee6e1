"""Measure lesson 8 against the targets of its issue: prompt-to-prompt edits and fine-tuning. Prints tables.

    python benchmarks/prompt_to_prompt.py                       # the shipped vae.pt and text.pt
    python benchmarks/prompt_to_prompt.py --text checkpoints/text.pt --vae checkpoints/vae.pt
    python benchmarks/prompt_to_prompt.py --quick               # a smoke test: few edits, few steps

Sections (measured with the course classifier and `captions.attributes`):

  digits      word swaps "a small {a} leaning right" -> "a small {b} leaning right" over all 90 ordered digit
              pairs (cycled to `--edits` edits), for each fraction F of `--fractions` (cross-attention replaced
              for F of the steps, self-attention for F * `--self-ratio`): the share of edited images the
              classifier reads as b, and their distance to the source, pixel MSE and the distance between the
              classifier's features, beside the same for the baseline (the edited prompt from the same
              noise without control)
  attributes  "a thick {d}" <-> "a thin {d}" and "a small {d}" <-> "a large {d}" over the ten digits: the share
              on the requested side of the caption thresholds, the share whose digit (as the classifier
              reads it) is the source's, and the distances
  finetune    (--finetune) full fine-tuning, LoRA (rank `--rank`) and from scratch on `--n-images` printed
              digits for `--ft-steps` steps each: trainable parameters, minutes, the classifier's accuracy on
              "a printed {d}" samples and their FD against held-out printed digits; forgetting: accuracy of
              "a {d}" samples (handwritten, no style word) before and after

Timings depend on the machine's load; the load average is printed with the tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import torch

from diffusionlab import finetune, printed
from diffusionlab.captions import DIGIT_WORDS, attributes, sides
from diffusionlab.data import load_mnist
from diffusionlab.editing.prompt_to_prompt import edit_prompt
from diffusionlab.metrics import edit_distances, frechet_distance, load_classifier, predict
from diffusionlab.pipelines import latent

ATTRIBUTE_SWAPS = [("thickness", "thick", "thin"), ("size", "large", "small")]


def note(msg):
    print(msg, file=sys.stderr, flush=True)


def run_edits(pipe, sources, edits, F, args, seed):
    """source, edited, baseline images for the prompt pairs, `args.batch` at a time."""
    out = [[], [], []]
    for i in range(0, len(sources), args.batch):
        g = torch.Generator().manual_seed(seed + i)
        imgs = edit_prompt(pipe, sources[i : i + args.batch], edits[i : i + args.batch], len(sources[i : i + args.batch]),
                           F, F * args.self_ratio, steps=args.steps, guidance_scale=args.guidance, generator=g,
                           local_blend=args.local_blend)
        for k in range(3):
            out[k].append(imgs[k])
    return [torch.cat(x) for x in out]


def digit_section(pipe, clf, args):
    pairs = [(a, b) for a in range(10) for b in range(10) if a != b]
    pairs = [pairs[i % len(pairs)] for i in range(args.edits)]
    sources = [f"a small {DIGIT_WORDS[a]} leaning right" for a, _ in pairs]
    edits = [f"a small {DIGIT_WORDS[b]} leaning right" for _, b in pairs]
    target = torch.tensor([b for _, b in pairs])
    print(f"\n## digit word swaps ({args.edits} edits, 'a small A leaning right' -> 'a small B leaning right')")
    print("| F cross (self) | edited read as B | baseline read as B | MSE edited-source | MSE baseline-source "
          "| feat. dist. edited | feat. dist. baseline |")
    print("|---|---|---|---|---|---|---|")
    for F in args.fractions:
        t0 = time.time()
        src, edt, base = run_edits(pipe, sources, edits, F, args, seed=0)
        pe, pb = predict(clf, edt)[0], predict(clf, base)[0]
        (me, fe), (mb, fb) = edit_distances(clf, src, edt), edit_distances(clf, src, base)
        print(f"| {F:.2f} ({F * args.self_ratio:.2f}) | {100 * (pe == target).float().mean():.1f}% | "
              f"{100 * (pb == target).float().mean():.1f}% | {me:.4f} | {mb:.4f} | {fe:.2f} | {fb:.2f} |", flush=True)
        note(f"  F={F}: {time.time() - t0:.0f} s")


def attribute_section(pipe, clf, args):
    print(f"\n## attribute swaps ({args.edits} edits per swap; requested side: the caption thresholds)")
    print("| swap | F cross (self) | edited on side | baseline on side | digit kept (edited) | digit kept (baseline) "
          "| MSE edited / baseline | feat. dist. edited / baseline |")
    print("|---|---|---|---|---|---|---|---|")
    for name, up, down in ATTRIBUTE_SWAPS:
        for a, b, side in ((up, down, -1), (down, up, 1)):
            digits = torch.arange(args.edits) % 10
            sources = [f"a {a} {DIGIT_WORDS[d]}" for d in digits]
            edits = [f"a {b} {DIGIT_WORDS[d]}" for d in digits]
            for F in args.fractions:
                src, edt, base = run_edits(pipe, sources, edits, F, args, seed=1)
                ps, pe, pb = predict(clf, src)[0], predict(clf, edt)[0], predict(clf, base)[0]
                on_e = (sides(attributes(edt), digits)[name] == side).float().mean()
                on_b = (sides(attributes(base), digits)[name] == side).float().mean()
                (me, fe), (mb, fb) = edit_distances(clf, src, edt), edit_distances(clf, src, base)
                print(f"| {a} -> {b} | {F:.2f} ({F * args.self_ratio:.2f}) | {100 * on_e:.1f}% | {100 * on_b:.1f}% | "
                      f"{100 * (pe == ps).float().mean():.1f}% | {100 * (pb == ps).float().mean():.1f}% | "
                      f"{me:.4f} / {mb:.4f} | {fe:.2f} / {fb:.2f} |", flush=True)


def sample_digits(pipe, template, n, args, seed=0):
    digits = torch.arange(n) % 10
    prompts = [template.format(d=DIGIT_WORDS[d]) for d in digits]
    x = pipe.sample(prompts, guidance_scale=args.guidance, steps=args.steps, generator=torch.Generator().manual_seed(seed))
    return x, digits


def finetune_section(base, clf, args):
    held_out = printed.make_printed(args.n_samples, seed=1)  # other draws than the training set (seed 0)
    ref = predict(clf, held_out["images"])[1]
    ref_hand = predict(clf, load_mnist("test")[0][: args.n_samples])[1]  # handwriting: as many test digits
    hand, labels = sample_digits(base, "a {d}", args.n_samples, args)
    pred_hand, feats_hand = predict(clf, hand)
    before = (pred_hand == labels).float().mean().item()
    fd_before = frechet_distance(feats_hand, ref_hand)
    recipe = finetune.FinetuneRecipe(n_images=args.n_images, batch_size=min(64, args.n_images))
    if args.conv_rank is not None:
        recipe = dataclasses.replace(recipe, lora_conv_rank=args.conv_rank or None)
    if args.lora_lr is not None:
        recipe = dataclasses.replace(recipe, lora_lr=args.lora_lr)
    print(f"\n## fine-tuning on {args.n_images} printed digits, {args.ft_steps} steps each "
          f"({args.n_samples} samples per measure; handwritten 'a {{d}}' before: {100 * before:.1f}% read right, "
          f"FD {fd_before:.2f} vs {args.n_samples} handwritten test digits)")
    print("| run | trainable parameters | minutes | 'a printed {d}' accuracy | FD vs printed | 'a {d}' accuracy after "
          "| 'a {d}' FD vs handwritten after |")
    print("|---|---|---|---|---|---|---|")
    lora_name = f"LoRA r={args.rank}" + (f", conv r={recipe.lora_conv_rank}" if recipe.lora_conv_rank else ", attention only")
    runs = {"full": ("full", {}), "lora": (lora_name, {"lora": args.rank}), "scratch": ("from scratch", {"from_scratch": True})}
    for run, kw in (runs[name] for name in args.runs):
        t0 = time.time()
        pipe, hist = finetune.finetune_text(base, steps=args.ft_steps, recipe=recipe, progress=False, **kw)
        minutes = (time.time() - t0) / 60
        x, d = sample_digits(pipe, "a printed {d}", args.n_samples, args)
        pred, feats = predict(clf, x)
        after, dl = sample_digits(pipe, "a {d}", args.n_samples, args)
        pred_after, feats_after = predict(clf, after)
        print(f"| {run} | {hist['trainable']:,} ({100 * hist['trainable'] / hist['parameters']:.1f}%) | {minutes:.1f} | "
              f"{100 * (pred == d).float().mean():.1f}% | {frechet_distance(feats, ref):.2f} | "
              f"{100 * (pred_after == dl).float().mean():.1f}% | {frechet_distance(feats_after, ref_hand):.2f} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text", help="text checkpoint (default: the shipped text.pt)")
    p.add_argument("--vae", help="VAE checkpoint (default: the shipped vae.pt)")
    p.add_argument("--edits", type=int, default=180, help="edits per kind and fraction")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    p.add_argument("--self-ratio", type=float, default=0.5, help="self-attention fraction = F * this")
    p.add_argument("--local-blend", action="store_true")
    p.add_argument("--guidance", type=float, default=latent.DEFAULT_TEXT_GUIDANCE)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=90)
    p.add_argument("--sections", nargs="+", default=["digits", "attributes"],
                   choices=["digits", "attributes", "finetune"])
    p.add_argument("--n-images", type=int, default=500, help="finetune: printed training digits")
    p.add_argument("--ft-steps", type=int, default=1000)
    p.add_argument("--rank", type=int, default=2, help="LoRA rank of the attention projections (the convolutions: the recipe's)")
    p.add_argument("--conv-rank", type=int, help="finetune: LoRA rank of the 3x3 convolutions (default: the recipe's; "
                   "0: attention only)")
    p.add_argument("--lora-lr", type=float, help="finetune: LoRA's learning rate (default: the recipe's)")
    p.add_argument("--runs", nargs="+", default=["full", "lora", "scratch"], choices=["full", "lora", "scratch"],
                   help="finetune: which runs")
    p.add_argument("--n-samples", type=int, default=200, help="finetune: samples per measure")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.edits, args.fractions, args.steps, args.batch = 20, [0.0, 0.8], 10, 20
        args.n_images, args.ft_steps, args.n_samples = 40, 2, 20
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    pipe = latent.load(args.text, vae=args.vae)
    clf = load_classifier()
    print(f"prompt-to-prompt: {args.steps} DDIM steps, guidance {args.guidance:g}, local blend {args.local_blend}; "
          f"load average {os.getloadavg()[0]:.1f}")
    if "digits" in args.sections:
        digit_section(pipe, clf, args)
    if "attributes" in args.sections:
        attribute_section(pipe, clf, args)
    if "finetune" in args.sections:
        finetune_section(pipe, clf, args)


if __name__ == "__main__":
    main()
