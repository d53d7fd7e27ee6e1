"""Pipelines: a trained network together with its noise schedule and the sampling loop that uses it.

    pixel     `DiffusionModel`: a UNet on 28x28 images (lessons 2-6)
    latent    `LatentDiffusion`: the VAE, the text encoder and a latent UNet (lesson 7)
    instruct  `InstructPix2Pix`: the lesson-7 model with the input image's latent as extra channels (lesson 9)
"""
