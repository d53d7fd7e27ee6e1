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
