"""DiffusionLab: diffusion models built from scratch on MNIST, one lesson at a time.

Modules, in the order the course meets them (one algorithm a file):
    data          MNIST in [-1, 1] from the vendored files; pictures a student uploads   (lesson 1)
    models/       the networks: `unet` (UNetConfig, UNet), `attention` (maps you can read) (lessons 1-3, 7-9)
    losses        the training objectives: denoising, DDPM's eps-prediction             (lessons 1-3)
    train         one training loop: AdamW, EMA, mixed precision, exact resume          (lessons 1-3)
    checkpoints   atomic saves, weights_only loads, clear errors                         (lesson 1)
    schedules     noise schedules and the forward process q(x_t | x_0)                   (lesson 2)
    samplers      DDPM and DDIM steps and the sampling loop, apart from the model        (lessons 2, 4)
    guidance      classifier-free guidance                                               (lesson 3)
    metrics       an MNIST classifier, accuracy and Frechet distance of samples           (lessons 3-4)
    editing/      SDEdit, inpainting, visual anagrams, hybrid images: one file each      (lesson 6)
    pipelines/    a network with its schedule and sampler: `pixel.DiffusionModel`
    printed       printed digits drawn from matplotlib's fonts, for fine-tuning          (lesson 8)
    course        the course's models: recipes, shipped checkpoints, `load(name)`
    viz, widgets/, checks/   pictures; sliders and exercise checks, one file per lesson
    filters, utils, cli
"""

__version__ = "0.1.0"
