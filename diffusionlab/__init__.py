"""DiffusionLab: diffusion models built from scratch on MNIST, one lesson at a time.

Modules, in the order the course meets them (one algorithm a file):
    data          MNIST in [-1, 1] from the vendored files; pictures a student uploads  (lesson 1)
    filters       the Gaussian blur: the baseline denoiser; lesson 6's hybrid images    (lessons 1, 6)
    models/       the networks: `unet` (UNetConfig, UNet), `attention` (maps you can read) (lessons 1-3, 7-9)
    losses        the training objectives: denoising, DDPM's eps-prediction             (lessons 1-3)
    train         one training loop: AdamW, EMA, mixed precision, exact resume          (lessons 1-3)
    records       a training run's loss curve and samples at a few steps                (lessons 1-3)
    checkpoints   atomic saves, weights_only loads, clear errors                        (lesson 1)
    schedules     noise schedules and the forward process q(x_t | x_0)                  (lesson 2)
    samplers      DDPM and DDIM steps and the sampling loop, apart from the model       (lessons 2, 4)
    guidance      classifier-free guidance; text and dual text/image guidance           (lessons 3, 7, 9)
    metrics       an MNIST classifier, accuracy and Frechet distance of samples         (lessons 3-9)
    flow          flow matching and reflow: the velocity loss and the ODE solvers       (lesson 5)
    editing/      SDEdit, inpainting, visual anagrams, hybrid images: one file each     (lesson 6)
    models/vae    the autoencoder whose latents the text model learns                   (lesson 7)
    models/text_encoder   tokenizer and the small transformer that reads captions       (lesson 7)
    captions      captions measured from each digit's pixels                            (lesson 7)
    pipelines/    a network with its schedule and sampler: `pixel.DiffusionModel` (lessons 1-4, 6),
                  `flow.FlowModel` (5), `latent.LatentDiffusion` (7), `instruct.InstructPix2Pix` (9)
    editing/prompt_to_prompt   attention control: replace, refine, re-weight, local blend (lesson 8)
    models/lora   low-rank updates of linear and convolution layers                     (lesson 8)
    finetune      fine-tuning the text model on printed digits, full or LoRA            (lesson 8)
    printed       printed digits drawn from matplotlib's fonts, for fine-tuning         (lesson 8)
    models/instruct   the UNet that reads the input image's latent too                  (lesson 9)
    instructions  (caption, instruction, edited caption) triplets from templates        (lesson 9)
    pairs         the editing pairs: exact image operations and the pair filter         (lesson 9)
    course        the course's models: recipes, shipped checkpoints, `train_model`, `load(name)`
    viz, widgets/, checks/   pictures; sliders and exercise checks, one file per lesson
    utils, cli
"""

__version__ = "0.1.0"
