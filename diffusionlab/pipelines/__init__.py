"""Pipelines: a trained network together with its noise schedule and the sampling loop that uses it.

    pixel   `DiffusionModel`: a UNet on 28x28 images (lessons 2-6)
"""
