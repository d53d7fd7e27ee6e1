"""Exercise checks: compare a student's function with the package's reference.

One file per lesson (`denoising`, `ddpm`, `guidance`, `ddim`, `flow_matching`, `editing`, `latent_text`, `prompt_to_prompt`,
`instruct_pix2pix`), all of them built on `common.compare`;
every name is also available here, so a notebook writes `checks.check_add_noise(add_noise)`.
"""

from .common import ExerciseError, compare, describe, others_as_references, seeded, yours_or_reference  # noqa: F401
from .denoising import check_add_noise, check_denoiser_loss, check_res_block, check_up_block  # noqa: F401
from .ddpm import (check_cosine_schedule, check_ddpm_sample, check_ddpm_step, check_diffusion_loss,  # noqa: F401
                   check_q_sample, check_time_res_block, reference_ddpm_sample, reference_ddpm_step,
                   reference_diffusion_loss, reference_q_sample)
from .guidance import NULL_CLASS, check_cfg_combine, check_drop_labels, check_guided_sample  # noqa: F401
from .ddim import check_ddim_step, check_ddim_timesteps  # noqa: F401
from .flow_matching import check_euler_step, check_guided_velocity, check_interpolate, check_velocity_target  # noqa: F401
from .editing import check_anagram_combine, check_inpaint_replace, check_sdedit_start, check_split_frequencies  # noqa: F401
from .latent_text import check_cross_attention, check_kl_divergence, check_negative_prompt_eps, check_reparameterize  # noqa: F401
from .prompt_to_prompt import check_lora_linear, check_replace_cross, check_reweight  # noqa: F401
from .instruct_pix2pix import check_directional_test, check_drop_conditions, check_dual_guidance  # noqa: F401
