import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib import animation
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


class RecordingWriter(animation.AbstractMovieWriter):
    """A movie writer that keeps, for each frame, the image and the title that the animation drew."""

    def __init__(self):
        super().__init__(fps=5)
        self.images, self.titles = [], []

    def setup(self, fig, outfile, dpi=None):
        super().setup(fig, outfile, dpi)

    def grab_frame(self, **savefig_kwargs):
        ax = self.fig.axes[0]
        self.images.append(np.array(ax.images[0].get_array()))
        self.titles.append(ax.get_title())

    def finish(self):
        pass


def test_animation_shows_every_frame_of_the_trajectory(trajectory, tmp_path):
    anim = viz.animate_sampling(trajectory, nrow=3)
    writer = RecordingWriter()
    anim.save(tmp_path / "unused", writer=writer)
    assert len(writer.images) == len(trajectory["xt"]) == 9  # noise + 8 steps
    for k, image in enumerate(writer.images):
        assert np.allclose(image, viz.make_grid(trajectory["xt"][k], nrow=3)), k
    assert writer.titles == viz.frame_labels(trajectory)
    anim = viz.animate_sampling(trajectory, nrow=2, n_images=4, which="x0")
    writer = RecordingWriter()
    anim.save(tmp_path / "unused", writer=writer)
    assert len(writer.images) == len(trajectory["x0"]) == 8
    assert np.allclose(writer.images[-1], viz.make_grid(trajectory["x0"][-1, :4], nrow=2))


def test_strip_and_gif(trajectory, tmp_path):
    ax = viz.trajectory_strip(trajectory, n_frames=5)
    assert len(ax.get_xticklabels()) == 5
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


def test_plot_loss_draws_the_mean_at_the_middle_of_its_window():
    """A falling straight line: its running mean must lie on the line, not lag smooth/2 steps behind it."""
    steps = list(range(1, 201))
    ax = viz.plot_loss({"step": steps, "loss": [3.0 - 0.01 * s for s in steps]}, smooth=11)
    x, y = ax.lines[1].get_data()
    assert len(x) == 200 - 11 + 1
    np.testing.assert_allclose(y, 3.0 - 0.01 * np.asarray(x), atol=1e-9)
    matplotlib.pyplot.close(ax.figure)


def test_plot_loss_labels_its_axes():
    ax = viz.plot_loss({"step": list(range(1, 101)), "loss": [1 / s for s in range(1, 101)]}, smooth=10)
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss"
    matplotlib.pyplot.close(ax.figure)
