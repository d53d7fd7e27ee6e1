"""Measure lesson 7's latent text-to-image model against the targets of its issue, and print the tables.

    python benchmarks/latent_text.py                                   # the shipped vae.pt and text.pt
    python benchmarks/latent_text.py --vae checkpoints/vae.pt --text checkpoints/text.pt
    python benchmarks/latent_text.py --quick                           # a smoke test: few samples

Sections (all measured with the course classifier and `captions.attributes`, the functions that wrote
the training captions):

  vae         reconstruction MSE of 1000 test digits through the VAE (posterior mean), and the FD of the
              reconstructions: the best FD a model sampling this VAE's latents can reach
  digits      `--n` samples (1000) for the prompts "a zero" .. "a nine" in turn (DDIM 50, `--guidance`),
              timed; the share the classifier reads as the requested digit; FD against the test set
              beside the floor of as many real held-out digits (`metrics.SampleScorer`)
  attributes  for each attribute word (thick, thin, large, small, leaning right, leaning left): `--per-word`
              samples of "a <word> <digit>" over the ten digits, and the same seeds with the prompt
              without the word ("a <digit>"): the share on the requested side of the caption threshold
              (the tertile of that digit: where training captions used the word), and of the median
  negative    "a <digit>" with a negative prompt ("a thin <digit>", ...): the share on the opposite side,
              against no negative prompt
  guidance    for each setting of `--sweep` ("W" guides every step, "W:LO:HI" only the timesteps LO <= t < HI):
              accuracy and FD of `--sweep-n` samples, and the share of `--per-word` samples of "a thin <digit>"
              and "a large <digit>" on the requested side (the two hardest words), to choose the recommended setting

The other sections sample with `--guidance` and `--guidance-interval` (default: the course's recommended
setting, `latent.RECOMMENDED_GUIDANCE`; `--guidance-interval 0 1000` guides every step).

Timings depend on the machine's load; the load average is printed with the tables.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from diffusionlab.captions import ATTRIBUTES, DIGIT_WORDS, attributes, sides, thresholds
from diffusionlab.data import load_mnist
from diffusionlab.metrics import SampleScorer, frechet_distance, predict
from diffusionlab.pipelines import latent

WORD_TESTS = [  # (attribute, side, prompt template with {d} for the digit word)
    ("thickness", 1, "a thick {d}"), ("thickness", -1, "a thin {d}"),
    ("size", 1, "a large {d}"), ("size", -1, "a small {d}"),
    ("slant", 1, "a {d} leaning right"), ("slant", -1, "a {d} leaning left"),
]
NEGATIVE_TESTS = [  # (attribute, side wanted, negative template)
    ("thickness", 1, "a thin {d}"), ("thickness", -1, "a thick {d}"),
    ("slant", -1, "a {d} leaning right"), ("slant", 1, "a {d} leaning left"),
]


def note(msg):
    print(msg, file=sys.stderr, flush=True)


def medians() -> dict[str, torch.Tensor]:
    x, y = load_mnist("train")
    a = attributes(x)
    return {k: torch.stack([v[y == d].median() for d in range(10)]) for k, v in a.items()}


def side_shares(images, digits, name, side, thr, med):
    """(share beyond the caption threshold on `side`, share beyond the median on `side`)."""
    a = attributes(images)
    strict = sides(a, digits, thr)[name] == side
    lenient = (a[name] - med[name][digits]) * side > 0
    return strict.float().mean().item(), lenient.float().mean().item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vae", help="VAE checkpoint (default: the shipped vae.pt)")
    p.add_argument("--text", help="text model checkpoint (default: the shipped text.pt)")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--per-word", type=int, default=200)
    p.add_argument("--guidance", type=float, default=latent.RECOMMENDED_GUIDANCE["guidance_scale"])
    p.add_argument("--guidance-interval", type=int, nargs=2, default=latent.RECOMMENDED_GUIDANCE["guidance_interval"],
                   metavar=("LO", "HI"), help="guide only the timesteps LO <= t < HI (0 1000: every step)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--sweep", default="1.5,2,2.5:0:825,2.5:0:850,2.5:500:1000,2.5:0:700",
                   help="settings for the guidance section, W or W:LO:HI, comma-separated ('' to skip)")
    p.add_argument("--sweep-n", type=int, default=500)
    p.add_argument("--sections", default="vae,digits,attributes,negative,guidance")
    p.add_argument("--quick", action="store_true", help="few samples, to check the script runs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.per_word, args.sweep_n, args.steps = 50, 20, 50, 10
    sections = args.sections.split(",")

    pipe = latent.load(args.text, vae=args.vae)
    interval = tuple(args.guidance_interval)
    scorer = SampleScorer()
    thr, med = thresholds(), medians()
    load = os.getloadavg()
    print(f"# lesson 7 latent text model: {args.text or 'shipped text.pt'}, {args.vae or 'shipped vae.pt'}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f}; DDIM {args.steps} steps, guidance {args.guidance:g} at timesteps {interval[0]} <= t < "
          f"{interval[1]}, seed {args.seed}\n")

    def draw(prompts, negatives=None, w=args.guidance, seed=args.seed, interval=interval):
        g = torch.Generator().manual_seed(seed)
        return pipe.sample(prompts, negative_prompts=negatives, guidance_scale=w, steps=args.steps, generator=g,
                           guidance_interval=interval)

    if "vae" in sections:
        x, _ = load_mnist("test")
        x = x[:1000]
        rec = pipe.vae.decode_latents(pipe.vae.encode_latents(x))
        fd = scorer.score(rec)["fd"]
        print("| VAE | value |\n|---|---|")
        print(f"| reconstruction MSE, 1000 test digits in [-1, 1] | {(rec - x).pow(2).mean().item():.4f} |")
        print(f"| FD of the reconstructions (floor {scorer.floor(1000):.2f}) | {fd:.2f} |")
        print(f"| latent scale factor | {float(pipe.vae.scale_factor):.4f} |\n")

    if "digits" in sections:
        digits = torch.arange(args.n) % 10
        prompts = [f"a {DIGIT_WORDS[d]}" for d in digits.tolist()]
        note(f"sampling {args.n} digits ...")
        start = time.time()
        images = draw(prompts)
        elapsed = time.time() - start
        s = scorer.score(images, digits)
        floor = scorer.floor(args.n)
        print("| digits | value | target |\n|---|---|---|")
        print(f"| read as the requested digit ({args.n} samples, 'a zero' .. 'a nine') | "
              f"{100 * s['accuracy']:.1f}% | >= 97% |")
        print(f"| FD (real-data floor {floor:.2f}) | {s['fd']:.2f} ({s['fd'] / floor:.2f}x floor) | <= 2x floor |")
        print(f"| sampling time, {args.n} images, DDIM {args.steps}, guided | {elapsed:.1f} s | < 30 s |\n")

    if "attributes" in sections:
        print(f"| word | prompt | on the requested side (caption threshold) | without the word | "
              f"beyond the median | without the word |\n|---|---|---|---|---|---|")
        digits = torch.arange(args.per_word) % 10
        base = draw([f"a {DIGIT_WORDS[d]}" for d in digits.tolist()])
        for name, side, template in WORD_TESTS:
            note(f"sampling '{template}' ...")
            images = draw([template.format(d=DIGIT_WORDS[d]) for d in digits.tolist()])
            with_word, without = side_shares(images, digits, name, side, thr, med), side_shares(base, digits, name, side, thr, med)
            acc = (predict(scorer.classifier, images)[0] == digits).float().mean().item()
            word = template.replace("a ", "").replace("{d}", "").strip()
            print(f"| {word} | {template} | {100 * with_word[0]:.0f}% | {100 * without[0]:.0f}% | "
                  f"{100 * with_word[1]:.0f}% | {100 * without[1]:.0f}% | (digit read right: {100 * acc:.0f}%)")
        print()

    if "negative" in sections:
        print("| prompt | negative prompt | wanted side | share (caption threshold) | without the negative | "
              "beyond the median | without |\n|---|---|---|---|---|---|---|")
        digits = torch.arange(args.per_word) % 10
        prompts = [f"a {DIGIT_WORDS[d]}" for d in digits.tolist()]
        base = draw(prompts)
        for name, side, template in NEGATIVE_TESTS:
            note(f"sampling with negative '{template}' ...")
            images = draw(prompts, [template.format(d=DIGIT_WORDS[d]) for d in digits.tolist()])
            a, b = side_shares(images, digits, name, side, thr, med), side_shares(base, digits, name, side, thr, med)
            print(f"| a <digit> | {template.replace('{d}', '<digit>')} | {name} {'+' if side > 0 else '-'} | "
                  f"{100 * a[0]:.0f}% | {100 * b[0]:.0f}% | {100 * a[1]:.0f}% | {100 * b[1]:.0f}% |")
        print()

    if "guidance" in sections and args.sweep:
        print(f"| guidance | at timesteps | read as requested digit | FD ({args.sweep_n} samples; floor "
              f"{scorer.floor(args.sweep_n):.2f}) | thin ({args.per_word}) | large ({args.per_word}) |"
              "\n|---|---|---|---|---|---|")
        digits = torch.arange(args.sweep_n) % 10
        prompts = [f"a {DIGIT_WORDS[d]}" for d in digits.tolist()]
        words = torch.arange(args.per_word) % 10
        for setting in args.sweep.split(","):
            w, *lo_hi = (float(v) for v in setting.split(":"))
            at = (int(lo_hi[0]), int(lo_hi[1])) if lo_hi else None
            note(f"guidance {setting} ...")
            s = scorer.score(draw(prompts, w=w, interval=at), digits)
            shares = [side_shares(draw([template.format(d=DIGIT_WORDS[d]) for d in words.tolist()], w=w, interval=at),
                                  words, name, side, thr, med)[0]
                      for name, side, template in (WORD_TESTS[1], WORD_TESTS[2])]  # thin, large
            where = "every step" if at is None else f"{at[0]} <= t < {at[1]}"
            print(f"| {w:g} | {where} | {100 * s['accuracy']:.1f}% | {s['fd']:.2f} ({s['fd'] / scorer.floor(args.sweep_n):.2f}x) | "
                  f"{100 * shares[0]:.1f}% | {100 * shares[1]:.1f}% |", flush=True)
        print()


if __name__ == "__main__":
    main()
