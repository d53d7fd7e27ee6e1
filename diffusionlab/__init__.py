"""DiffusionLab: diffusion models built from scratch on MNIST, one lesson at a time.

Modules, in the order the course meets them:
    data         MNIST in [-1, 1] from the vendored files; pictures a student uploads  (lesson 1)
    unet         the UNet and its config                                              (lessons 1-3)
    train        losses and the training loop                                          (lessons 1-3)
    schedules    noise schedules and the forward process q(x_t | x_0)                  (lesson 2)
    samplers     DDPM and DDIM steps and the sampling loop                             (lessons 2, 4)
    guidance     classifier-free guidance                                              (lesson 3)
    metrics      an MNIST classifier, accuracy and Frechet distance of samples          (lessons 3-4)
    course       the course's models: recipes, shipped checkpoints, `load(name)`
    checkpoints, utils, viz, widgets, checks, cli
"""

__version__ = "0.1.0"
