"""course.py: the names of the course's models and the errors for the ones without a recipe here."""

import pytest

from diffusionlab import course


@pytest.mark.parametrize("name", course.LATENT_MODELS)
def test_latent_models_have_no_unet_recipe_and_the_error_says_where_they_are_built(name):
    with pytest.raises(ValueError) as err:
        course.build(name)
    message = str(err.value)
    assert f"{name!r} has no UNet recipe in course.py" in message
    assert "pipelines/latent.py" in message and "finetune.py" in message and "pipelines/instruct.py" in message
    assert "unknown model" not in message


def test_an_unknown_name_lists_the_course_models():
    with pytest.raises(ValueError, match=r"unknown model 'unet'; the course's models are: denoiser, ddpm, cond"):
        course.build("unet")


@pytest.mark.parametrize("name", ["cond", "text"])
def test_load_names_the_devices_there_are_for_a_device_that_is_not_one(name):
    with pytest.raises(ValueError, match=r"unknown device 'gpu'; the devices here are: cpu"):
        course.load(name, device="gpu")


def test_load_takes_a_device_name():
    assert course.load("cond", device="cpu").device.type == "cpu"
