"""The solutions in the notebooks run where the data is: on a GPU as on the CPU.

The full-mode run of the lessons on a GPU found lesson 2's q_sample solution indexing the schedule's table (which
lives on the CPU) with CUDA timesteps, which fails there. This machine has no GPU, so the test puts the data on
PyTorch's "meta" device instead: a solution that moves the table to the data's device returns a meta tensor; one
that indexes the CPU table with the data's timesteps does not.
"""

import json
from pathlib import Path

import torch

from diffusionlab.schedules import NoiseSchedule

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def notebook_function(notebook: str, name: str):
    """The function `name` as the solution notebook defines it (its code cell, executed on its own)."""
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    source = next("".join(c["source"]) for c in cells
                  if c["cell_type"] == "code" and "".join(c["source"]).startswith(f"def {name}("))
    namespace = {"torch": torch}
    exec(source, namespace)
    return namespace[name]


def test_lesson2_q_sample_runs_on_the_device_of_its_inputs():
    q_sample = notebook_function("02_ddpm.ipynb", "q_sample")
    schedule = NoiseSchedule(1000, "cosine")  # tables on the CPU, as always
    x0 = torch.zeros(4, 1, 28, 28, device="meta")
    t = torch.tensor([0, 10, 500, 999], device="meta")
    xt = q_sample(schedule, x0, t, torch.zeros_like(x0))
    assert xt.device.type == "meta" and xt.shape == x0.shape
    # and on the CPU it is the course's forward process
    x0, eps = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    t = torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(q_sample(schedule, x0, t, eps), schedule.q_sample(x0, t, eps))
