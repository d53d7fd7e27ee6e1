import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from PIL import Image

from diffusionlab import viz
from diffusionlab.samplers import sample
from diffusionlab.schedules import NoiseSchedule


@pytest.fixture(scope="module")
def trajectory():
    _, traj = sample(lambda x, t: 0.3 * x, (6, 1, 28, 28), NoiseSchedule(1000), steps=8, return_trajectory=True,
                     generator=torch.Generator().manual_seed(0), progress=False)
    return traj


def test_make_grid_layout():
    grid = viz.make_grid(torch.zeros(12, 1, 28, 28), nrow=5, pad=2)
    assert grid.shape == (3 * 30 + 2, 5 * 30 + 2)
    assert grid[2:30, 2:30].max() == 0.5  # model range [-1, 1] -> display range [0, 1]: 0 is mid-gray
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        viz.make_grid(torch.zeros(3, 28, 28))


def test_strip_animation_and_gif(trajectory, tmp_path):
    ax = viz.trajectory_strip(trajectory, n_frames=5)
    assert len(ax.get_xticklabels()) == 5
    anim = viz.animate_sampling(trajectory, nrow=3)
    assert "<img" in anim.to_jshtml() or "animation" in anim.to_jshtml().lower()
    path = viz.save_gif(trajectory, tmp_path / "s.gif", nrow=3, fps=4)
    with Image.open(path) as gif:
        assert gif.n_frames == 9  # noise + 8 steps
        gif.seek(8)
        assert gif.info["duration"] >= 1000  # the final digits stay on screen for a second


def test_plot_loss():
    ax = viz.plot_loss({"step": list(range(1, 101)), "loss": [1 / s for s in range(1, 101)]})
    assert ax.get_yscale() == "log"


def test_frame_labels_name_the_timestep_each_frame_is_at(trajectory):
    """Frame k of trajectory["xt"] is x at ts[k] (frame 0: the starting noise), the last frame the clean image."""
    ts = trajectory["t"]
    labels = viz.frame_labels(trajectory)
    assert labels == [f"t={t}" for t in ts] + ["x0"]
    assert viz.frame_labels(trajectory, "x0") == [f"x0 pred. at t={t}" for t in ts]
    ax = viz.trajectory_strip(trajectory, n_frames=len(ts) + 1)  # every frame
    assert [tick.get_text() for tick in ax.get_xticklabels()] == labels
    anim = viz.animate_sampling(trajectory, nrow=3)
    anim._func(1)  # the title of frame 1 is the timestep of frame 1, not the one before it
    assert anim._fig.axes[0].get_title() == f"t={ts[1]}"
