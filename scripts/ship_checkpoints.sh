#!/usr/bin/env bash
# Re-make the checkpoints the course ships in data/checkpoints/ (about 2 to 3 hours on a 2-core CPU: the
# times of the shipped runs are in data/checkpoints/MANIFEST.txt), then print their SHA-256 sums and write them
# to checkpoints/MANIFEST.sha256. data/checkpoints/MANIFEST.txt is left as it is: beside each sum it records the
# command, time and machine of the run that made the shipped file. Seeds and step budgets are fixed, so the
# runs are the same on every machine (the weights agree up to floating-point differences between CPUs and
# thread counts). cond.pt and ddpm.pt were shipped before records existed: the runs below are those of their
# records (the same recipe and seed), whose weights differ from the shipped ones by such differences.
set -euo pipefail
cd "$(dirname "$0")/.."
out=data/checkpoints
mkdir -p "$out" checkpoints
diffusionlab classifier --epochs 3 --out "$out/classifier.pt"
# lessons 1-3, each with the record of its run beside it (records.py: the loss at every step and what the model
# made at steps 20, 100, 469 = one epoch, 1000, 2000, ...; lessons 1-3 show it with viz.show_record). A record
# covers a whole run, so checkpoints/NAME.pt must not exist yet.
OMP_NUM_THREADS=1 diffusionlab train cond --steps 4000 --seed 0 --checkpoint checkpoints/cond.pt --record "$out/cond_record.pt"
OMP_NUM_THREADS=1 diffusionlab train denoiser --steps 1000 --seed 0 --checkpoint checkpoints/denoiser.pt --record "$out/denoiser_record.pt"
OMP_NUM_THREADS=1 diffusionlab train ddpm --steps 3000 --seed 0 --checkpoint checkpoints/ddpm.pt --record "$out/ddpm_record.pt"
# lesson 5: flow matching with cond's network and recipe (the shipped run: 35 minutes of one thread on a shared
# 2-core CPU, which ended at step 2498 of that schedule), then reflow: 4000 (noise, sample) pairs from it (Euler 20
# steps, guidance 2) and the flow model fine-tuned on them (the shipped run: 9 minutes, step 399 of an estimated 531).
# That reflow run is the one exception to "the same on every machine": its learning rate followed a cosine planned
# for 531 steps and its time ran out at step 399, while --steps 399 decays to the floor at step 399, so the
# re-made reflow.pt differs from the shipped one by more than floating point (a run of the same length and data).
OMP_NUM_THREADS=1 diffusionlab train flow --steps 2498 --seed 0 --checkpoint checkpoints/flow.pt
OMP_NUM_THREADS=1 diffusionlab make-reflow-pairs --n 4000 --steps 20 --solver euler --guidance 2 --seed 0 --checkpoint checkpoints/flow.pt --out checkpoints/reflow_pairs.pt
OMP_NUM_THREADS=1 diffusionlab train reflow --pairs checkpoints/reflow_pairs.pt --base checkpoints/flow.pt --steps 399 --seed 0 --checkpoint checkpoints/reflow.pt
# lesson 7: the VAE, then the latent text model on its latents (two threads: the machine was otherwise quiet;
# on a 2-core CPU shared with other work, use one thread per process)
OMP_NUM_THREADS=1 diffusionlab train vae --steps 700 --seed 0 --checkpoint checkpoints/vae.pt
OMP_NUM_THREADS=2 diffusionlab train text --steps 6000 --seed 0 --vae checkpoints/vae.pt --checkpoint checkpoints/text.pt
# lesson 8: the text model fine-tuned on printed digits (full fine-tuning; LoRA is the lesson's comparison)
OMP_NUM_THREADS=1 diffusionlab train finetune --base checkpoints/text.pt --vae checkpoints/vae.pt --data printed --steps 1000 --seed 0 --checkpoint checkpoints/text-printed.pt
# lesson 9: the pairs drawn by the text model with prompt-to-prompt (all kinds of instruction, then digit changes
# only: the filter keeps few digit changes, so they get prompts of their own), then InstructPix2Pix trained on both
OMP_NUM_THREADS=1 diffusionlab make-pairs --n 2000 --seed 0 --checkpoint checkpoints/text.pt --vae checkpoints/vae.pt --out checkpoints/pairs.pt
OMP_NUM_THREADS=1 diffusionlab make-pairs --n 1500 --kinds digit --exact 0 --seed 1 --checkpoint checkpoints/text.pt --vae checkpoints/vae.pt --out checkpoints/pairs_digit.pt
OMP_NUM_THREADS=1 diffusionlab train pix2pix --pairs checkpoints/pairs.pt checkpoints/pairs_digit.pt --base checkpoints/text.pt --vae checkpoints/vae.pt --steps 8000 --seed 0 --checkpoint checkpoints/pix2pix.pt
python -c 'from diffusionlab import pairs; pairs.subset_pairs("checkpoints/pairs.pt", 512, "data/pix2pix_pairs_sample.pt", seed=0)'
for name in cond denoiser ddpm flow reflow vae text text-printed pix2pix; do
  diffusionlab export "checkpoints/$name.pt" "$out/$name.pt"
done
(cd "$out" && sha256sum ./*.pt | sed 's| \./| |') | tee checkpoints/MANIFEST.sha256
echo "compare with $out/MANIFEST.txt (its sums, and the command and time of each shipped run)"
