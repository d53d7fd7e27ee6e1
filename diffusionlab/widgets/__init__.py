"""Interactive sliders for the lessons (ipywidgets 7.7 on Colab and 8 locally: core widgets only).

One file per lesson (`denoising`, `ddpm`, `guidance`, `ddim`, `flow_matching`, `editing`, `latent_text`, `prompt_to_prompt`), all of them built on `common.Explorer`;
every name is also available here, so a notebook writes `widgets.make_ddim_explorer(model)`, and
`widgets.show_explorer(explorer)` to display one with a picture of its first state under it.
"""

from .common import Explorer, show_explorer  # noqa: F401
from .denoising import denoise_views, make_denoise_explorer  # noqa: F401
from .ddpm import forward_views, make_forward_explorer, make_reverse_explorer  # noqa: F401
from .guidance import make_guidance_explorer  # noqa: F401
from .ddim import DDIM_STEP_CHOICES, make_ddim_explorer  # noqa: F401
from .flow_matching import FLOW_STEP_CHOICES, make_flow_explorer, toy_means, toy_paths  # noqa: F401
from .editing import make_anagram_explorer, make_hybrid_explorer, make_inpaint_explorer, make_sdedit_explorer, make_upload_explorer, read_uploads  # noqa: F401
from .latent_text import TEXT_STEP_CHOICES, interpolate_latents, make_interpolation_explorer, make_prompt_explorer  # noqa: F401
from .prompt_to_prompt import make_attention_viewer, make_p2p_explorer, show_word_map  # noqa: F401
