"""Training records (records.py): recording leaves the training run unchanged, a record holds what it says, the CLI makes
one, and the shipped records of lessons 1-3 are there and describe the recipes' runs."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from diffusionlab import course, records, viz
from diffusionlab.checkpoints import load_checkpoint
from diffusionlab.cli import main

TINY = dict(limit=64, batch_size=16, progress=False)


def test_record_of_a_tiny_run(tmp_path):
    snaps = records.Snapshots("cond", [1, 3], n=4, sample_steps=2)
    model, history, record = records.record_training("cond", 3, tmp_path / "r.pt", snapshots=snaps, note="test", **TINY)
    # sampling at steps 1 and 3 (through train's callback) leaves the run as it is without
    plain, plain_history = course.train_model("cond", steps=3, **TINY)
    assert plain_history == history
    for a, b in zip(plain.unet.state_dict().values(), model.unet.state_dict().values()):
        assert torch.equal(a, b)
    loaded = records.load_record(tmp_path / "r.pt")  # weights_only=True
    assert torch.load(tmp_path / "r.pt", weights_only=True)["kind"] == "training-record"
    assert loaded["history"]["step"].tolist() == [1, 2, 3]
    assert torch.equal(loaded["history"]["loss"], torch.tensor(history["loss"], dtype=torch.float32))
    assert loaded["snapshot_steps"].tolist() == [1, 3]
    assert loaded["snapshots"].shape == (2, 4, 28, 28) and loaded["snapshots"].dtype == torch.uint8
    assert not torch.equal(loaded["snapshots"][0], loaded["snapshots"][1])  # the model changed between them
    assert loaded["snapshot_labels"].tolist() == [0, 1, 2, 3] and loaded["inputs"] is None
    assert loaded["weights_sha256"] == records.weights_digest(model.unet.state_dict())
    assert not loaded["same_as_shipped"] and "not the run that made the shipped weights" in loaded["note"]
    assert loaded["note"].startswith("test || ")
    assert records.epochs(3, loaded) == 3 * 16 / 64
    with pytest.raises(ValueError, match="cannot resume"):  # a record covers a whole run
        (tmp_path / "ckpt.pt").write_bytes(b"")
        records.record_training("cond", 3, checkpoint=tmp_path / "ckpt.pt", snapshots=snaps, **TINY)


def test_snapshot_steps():
    assert records.snapshot_steps(1000) == [20, 100, 469, 1000]
    assert records.snapshot_steps(3000) == [20, 100, 469, 1000, 2000, 3000]
    assert records.snapshot_steps(50) == [20, 50]


def test_cli_train_with_record(tmp_path, capsys):
    out = tmp_path / "denoiser_record.pt"
    argv = ["train", "denoiser", "--steps", "3", "--batch-size", "16", "--checkpoint", str(tmp_path / "d.pt"),
            "--device", "cpu", "--record", str(out)]
    assert main(argv) == 0
    record = records.load_record(out)
    assert record["snapshot_steps"].tolist() == [3] and record["snapshots"].shape == (1, 10, 28, 28)
    assert record["inputs"]["noisy"].shape == (10, 28, 28)
    assert "diffusionlab train denoiser --steps 3 --seed 0 --batch-size 16 --record" in record["note"]
    capsys.readouterr()
    assert main(argv) == 2  # the checkpoint exists now: no record of a resumed run
    assert "a record covers a whole run" in capsys.readouterr().err
    assert main(["train", "flow", "--steps", "3", "--record", str(out)]) == 2
    assert "--record records a run of denoiser, ddpm, cond" in capsys.readouterr().err


def _fake_record(inputs):
    S, N = 3, 5
    return {"model_name": "denoiser", "steps": 30, "batch_size": 128, "n_train": 60000, "sampler": "test",
            "history": {"step": torch.arange(1, 31), "loss": torch.linspace(1, 0.1, 30)},
            "snapshot_steps": torch.tensor([10, 20, 30]),
            "snapshots": torch.randint(0, 256, (S, N, 28, 28), dtype=torch.uint8),
            "inputs": {"clean": torch.zeros(N, 28, 28, dtype=torch.uint8),
                       "noisy": torch.zeros(N, 28, 28, dtype=torch.uint8)} if inputs else None}


@pytest.mark.parametrize("inputs", [False, True])
def test_show_record_rows_and_curves(inputs):
    history = {"step": [1, 2, 3, 4], "loss": [1.0, 0.8, 0.7, 0.6]}
    fig = viz.show_record(_fake_record(inputs), history=history, smooth=5)
    loss_ax, grid_ax = fig.axes[:2]
    labels = [t.get_text() for t in grid_ax.get_yticklabels()]
    assert labels[-3:] == ["step 10 (0.021 ep)", "step 20 (0.043 ep)", "step 30 (0.064 ep)"]
    assert labels[:2] == (["clean", "noisy input"] if inputs else labels[:2]) and len(labels) == 3 + 2 * inputs
    mine = [line for line in loss_ax.lines if line.get_label() == "your run (4 steps)"]
    assert len(mine) == 1 and list(mine[0].get_ydata()) == history["loss"]
    assert "shown" not in grid_ax.get_title()
    matplotlib.pyplot.close(fig)
    fig = viz.show_record(_fake_record(inputs), columns=3)
    grid_ax = fig.axes[1]
    assert grid_ax.images[0].get_array().shape[1] == 2 + 3 * 30  # 3 images of 28 pixels and their 2-pixel borders
    assert grid_ax.get_title().endswith("(the first 3 shown)")
    matplotlib.pyplot.close(fig)


RECIPE_STEPS = {"denoiser": 1000, "ddpm": 3000, "cond": 4000}  # scripts/ship_checkpoints.sh


@pytest.mark.parametrize("name", records.RECORDED)
def test_shipped_records(name):
    path = records.shipped_record(name)
    assert path.stat().st_size < 400_000
    record = torch.load(path, weights_only=True)
    steps = RECIPE_STEPS[name]
    assert record["model_name"] == name and record["steps"] == steps and record["seed"] == 0
    assert record["history"]["step"].tolist() == list(range(1, steps + 1))
    loss = record["history"]["loss"]
    assert loss.shape == (steps,) and loss[-100:].mean() < 0.5 * loss[:20].mean()
    assert record["snapshot_steps"].tolist() == records.snapshot_steps(steps)
    assert record["snapshots"].shape[:2] == (len(records.snapshot_steps(steps)), 10 if name == "denoiser" else 20)
    # the record says truly whether it is the run that made the shipped weights
    shipped = records.weights_digest(load_checkpoint(course.shipped_checkpoint(name), name)["ema"])
    same = record["weights_sha256"] == shipped
    assert same == ("not the run that made the shipped weights" not in record["note"]), record["note"]
    if name == "denoiser":
        assert same  # lesson 1's shipped denoiser is the recorded run's


@pytest.mark.parametrize("name,own_steps", [("denoiser", 60), ("ddpm", 150), ("cond", 200)])
def test_show_record_is_legible_and_its_legend_hides_no_curve(name, own_steps):
    """The lessons' record figures with a fast-mode run of one's own: labels readable (at 72 dpi they were about
    8 pixels) and no point of any loss curve under the legend (it once covered the red curve where it falls)."""
    record = records.load_record(name)
    history = {"step": record["history"]["step"][:own_steps].tolist(),
               "loss": (record["history"]["loss"][:own_steps] * 1.1).tolist()}
    fig = viz.show_record(record, history=history, columns=10)
    assert fig.dpi >= 100
    fig.canvas.draw()
    loss_ax = fig.axes[0]
    box = loss_ax.get_legend().get_window_extent()
    for line in loss_ax.lines:
        if line.get_label().startswith("_"):  # the dotted lines at the snapshot steps, behind the legend by design
            continue
        points = loss_ax.transData.transform(line.get_xydata())
        inside = [box.contains(x, y) for x, y in points]
        assert not any(inside), f"the legend covers part of the curve '{line.get_label()}'"
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("name", ["flow", "cnd", "nothere.pt"])
def test_a_record_that_is_not_there_names_the_shipped_ones(name):
    with pytest.raises(course.CheckpointError, match=f"no training record '{name}': the course ships the records of "
                                                     "denoiser, ddpm, cond"):
        records.load_record(name)
