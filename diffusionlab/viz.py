"""Pictures: image grids, denoising-trajectory strips, sampling animations, loss curves (every lesson).

Images come in as model-range tensors (B, 1, H, W) in [-1, 1]; everything here shows them in [0, 1].
"""

from __future__ import annotations

from pathlib import Path


import matplotlib.pyplot as plt
import numpy as np
import torch

from .data import to_unit


def make_grid(images: torch.Tensor, nrow: int = 10, pad: int = 2) -> np.ndarray:
    """Tile (B, 1, H, W) images in [-1, 1] into one (rows*(H+pad)+pad, nrow*(W+pad)+pad) array in [0, 1], rows =
    ceil(B / nrow), on a grey (0.5) background."""
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"images must have shape (B, 1, H, W), got {tuple(images.shape)}")
    x = to_unit(images.detach().float().cpu())[:, 0].numpy()  # (B, H, W)
    B, H, W = x.shape
    rows = -(-B // nrow)
    grid = np.ones((rows * (H + pad) + pad, nrow * (W + pad) + pad), dtype=np.float32) * 0.5
    for i in range(B):
        r, c = divmod(i, nrow)
        grid[pad + r * (H + pad) : pad + r * (H + pad) + H, pad + c * (W + pad) : pad + c * (W + pad) + W] = x[i]
    return grid


def show_images(images: torch.Tensor, nrow: int = 10, title: str | None = None, ax=None, scale: float = 0.6,
                row_labels=None):
    """Show a grid of images; returns the matplotlib Axes."""
    grid = make_grid(images, nrow=nrow)
    if ax is None:
        _, ax = plt.subplots(figsize=(scale * min(nrow, len(images)), scale * grid.shape[0] / 30 + 0.3))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if row_labels is not None:
        H = images.shape[-2] + 2
        ax.set_yticks([2 + H * i + H / 2 - 1 for i in range(len(row_labels))])
        ax.set_yticklabels(row_labels)
    if title:
        ax.set_title(title)
    return ax


def show_row(images, titles=None, scale: float = 1.6, suptitle: str | None = None):
    """Images side by side, each with its own title (for example: noisy | blur | UNet)."""
    images = [im if im.dim() == 4 else im[None] for im in images]
    fig, axes = plt.subplots(1, len(images), figsize=(scale * len(images), scale + 0.4), squeeze=False)
    for i, (ax, im) in enumerate(zip(axes[0], images)):
        ax.imshow(make_grid(im[:1], nrow=1, pad=0), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.axis("off")
        if titles:
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def frame_labels(trajectory: dict, which: str = "xt") -> list[str]:
    """A label for each frame of a trajectory from `samplers.sample(..., return_trajectory=True)`.

    trajectory["xt"][k] is the image at timestep ts[k] (ts = trajectory["t"]): frame 0 is the noise the
    sampler starts from, frame k the result of step k, at the timestep the next step starts from, and
    the last frame the clean image x0. trajectory["x0"][k] is the x0 predicted at the k-th step, at ts[k].
    """
    ts = trajectory["t"]
    if which == "x0":
        return [f"x0 pred. at t={t}" for t in ts]
    return [f"t={t}" for t in ts] + ["x0"]


def trajectory_strip(trajectory: dict, n_frames: int = 10, which: str = "xt", index: int = 0, ax=None):
    """One image's path through the reverse process: `n_frames` evenly spaced steps, noise to digit."""
    frames = trajectory[which][:, index]  # (S(+1), 1, H, W)
    picks = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)
    ax = show_images(frames[picks], nrow=n_frames, ax=ax)
    labels = [frame_labels(trajectory, which)[p] for p in picks]
    W = frames.shape[-1] + 2
    ax.set_xticks([2 + W * i + W / 2 - 1 for i in range(n_frames)])
    ax.set_xticklabels(labels, fontsize=7)
    return ax


def plot_loss(history: dict, ax=None, smooth: int = 50, title: str = "training loss"):
    """The loss curve of `train`'s history, raw and smoothed, on a log scale. The smoothed curve is the mean of
    `smooth` steps drawn at the middle of its window, so that it does not lag behind the raw one."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    steps, loss = np.asarray(history["step"]), np.asarray(history["loss"])
    ax.plot(steps, loss, alpha=0.3, label="loss")
    if len(loss) >= smooth:
        kernel = np.ones(smooth) / smooth
        first = (smooth - 1) // 2  # the middle of the first window
        ax.plot(steps[first : first + len(loss) - smooth + 1], np.convolve(loss, kernel, mode="valid"),
                label=f"mean of {smooth}")
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss", title=title)
    ax.legend()
    return ax


def show_record(record: dict, history: dict | None = None, smooth: int = 50, title: str | None = None,
                columns: int | None = None, dpi: int = 100):
    """A training record (`records.py`): its loss curve, with `history` (a run of your own, from `train`) on the
    same axes, and its snapshots, one row per recorded step (labelled with the step and the epochs: passes over the
    training images). Both axes of the loss are logarithmic. columns: show only the first this many snapshot images
    of each row (the figure grows with them). dpi: the figure's resolution (a digit is 28 pixels, about 32 here; labels
    about 11). Returns the figure."""
    from .records import epochs  # records imports the training code; viz is imported without it

    rec_steps, rec_loss = record["history"]["step"].numpy(), record["history"]["loss"].numpy()
    snaps, steps = record["snapshots"][:, :columns], record["snapshot_steps"].tolist()  # (S, N, 28, 28) uint8
    rows = [snaps[i] for i in range(len(steps))]
    labels = [f"step {s} ({epochs(s, record):.2g} ep)" for s in steps]
    if record.get("inputs"):  # the denoiser's: its clean and noisy test digits above what it made of them
        rows = [record["inputs"]["clean"][:columns], record["inputs"]["noisy"][:columns], *rows]
        labels = ["clean", "noisy input", *labels]
    images = torch.cat(rows).float().unsqueeze(1) / 127.5 - 1  # back to [-1, 1]
    n = snaps.shape[1]
    fig = plt.figure(figsize=(4.5 + 0.32 * n, max(3.4, 0.36 * len(rows) + 1.0)), dpi=dpi, layout="constrained")
    loss_ax, grid_ax = fig.subplots(1, 2, width_ratios=[4.5, 0.32 * n])
    name, total = record["model_name"], record["steps"]
    loss_ax.plot(rec_steps, rec_loss, color="C0", alpha=0.3, lw=0.8, label=f"recipe's run ({total} steps)")
    if len(rec_loss) >= 2 * smooth:  # the mean of `smooth` steps at the middle of its window, drawn from step
        mean = np.convolve(rec_loss, np.ones(smooth) / smooth, mode="valid")  # 2 * smooth on (narrow on a log axis)
        middle = rec_steps[(smooth - 1) // 2 :][: len(mean)]
        keep = middle >= 2 * smooth
        loss_ax.plot(middle[keep], mean[keep], color="C0", label=f"recipe's run, mean of {smooth}")
    if history is not None and len(history["loss"]):
        loss_ax.plot(np.asarray(history["step"]), np.asarray(history["loss"]), color="C3", lw=1,
                     label=f"your run ({len(history['loss'])} steps)")
    # log axes: the first steps, where the loss falls fastest and where a short run of your own lies, get room
    loss_ax.set(xscale="log", yscale="log", xlabel="step", ylabel="loss")
    loss_ax.set_title(title or f"{name}: training loss", pad=24)
    for s in steps:
        loss_ax.axvline(s, color="0.6", lw=0.6, ls=":")
    # below the axes: inside, wherever it went, it would hide part of a curve (the fall crosses the whole width)
    loss_ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, frameon=False)
    per_epoch = record["n_train"] / record["batch_size"]
    top = loss_ax.secondary_xaxis("top", functions=(lambda s: s / per_epoch, lambda e: e * per_epoch))
    top.set_xlabel("epochs", fontsize=8)
    show_images(images, nrow=n, ax=grid_ax, row_labels=labels)
    grid_ax.tick_params(axis="y", labelsize=8, length=0)
    shown = f" (the first {n} shown)" if n < record["snapshots"].shape[1] else ""
    grid_ax.set_title(f"what it made (EMA weights): {record['sampler']}{shown}", fontsize=8, wrap=True)
    return fig


def animate_sampling(trajectory: dict, nrow: int = 8, n_images: int | None = None, interval: int = 80,
                     which: str = "xt"):
    """A matplotlib animation of the reverse process for a grid of images.

    In a notebook: `from IPython.display import HTML; HTML(anim.to_jshtml())`; to a file: `save_gif`.
    """
    from matplotlib import animation

    frames = trajectory[which]  # (S, B, 1, H, W)
    if n_images is not None:
        frames = frames[:, :n_images]
    grids = [make_grid(f, nrow=nrow) for f in frames]
    fig, ax = plt.subplots(figsize=(0.6 * nrow, 0.6 * grids[0].shape[0] / grids[0].shape[1] * nrow + 0.4))
    im = ax.imshow(grids[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    labels = frame_labels(trajectory, which)
    title = ax.set_title("")

    def update(k):
        im.set_data(grids[k])
        title.set_text(labels[k])
        return im, title

    anim = animation.FuncAnimation(fig, update, frames=len(grids), interval=interval, blit=False)
    plt.close(fig)
    return anim


def save_gif(trajectory: dict, path: str | Path, nrow: int = 8, n_images: int | None = None, fps: int = 12,
             scale: int = 3) -> Path:
    """Write the reverse process as an animated GIF (the last frame held for a second)."""
    from PIL import Image

    frames = trajectory["xt"]
    if n_images is not None:
        frames = frames[:, :n_images]
    images = []
    for f in frames:
        g = (make_grid(f, nrow=nrow) * 255).astype(np.uint8)
        images.append(Image.fromarray(g).resize((g.shape[1] * scale, g.shape[0] * scale), Image.NEAREST))
    images += [images[-1]] * fps
    path = Path(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path
