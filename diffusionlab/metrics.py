"""Measuring samples: an MNIST classifier that reads them (lessons 3-9), its accuracy on
class-conditional samples (lessons 3-6), the Frechet distance in its feature space (lessons 4, 5 and 8,
the benchmarks), and how far an edit moved an image (lesson 8).

Frechet distance between two Gaussians fitted to features (Heusel et al. 2017, "GANs trained by a
two time-scale update rule", the FID formula):
    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))
FID uses an Inception network trained on ImageNet; for digits we use the course's own small
MNIST classifier ("FD" below is that, not comparable with published FID numbers). The classifier
is trained on the first 50,000 MNIST training images only; samples are measured against the test
set, and the same measure on as many of the 10,000 training images it never saw gives the FD that as
many real digits score: a reference, not a bound (FD of a small set varies with the images drawn, and
samples less varied than real digits can score below it; lesson 4).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .checkpoints import load_checkpoint, save_checkpoint
from .data import load_mnist

CLASSIFIER_TRAIN = 50_000  # the classifier trains on train[:50000]; train[50000:] stays held out
CLASSIFIER_PATH = Path(__file__).resolve().parent.parent / "data" / "checkpoints" / "classifier.pt"


class Classifier(nn.Module):
    """A small CNN for 28x28 digits in [-1, 1]; `features` gives the 128-d vector used for FD."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # (B, 64, 7, 7)
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 7 * 7, 128), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, 10))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))  # (B, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, 10) logits


def train_classifier(epochs: int = 2, batch_size: int = 128, lr: float = 2e-3, seed: int = 0, device="cpu",
                     limit: int = CLASSIFIER_TRAIN, augment: bool = True, progress: bool = True) -> Classifier:
    """Train the classifier on the first `limit` MNIST training images (random shifts of up to 2
    pixels as augmentation)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = load_mnist("train")
    x, y = x[:limit], y[:limit]
    model = Classifier().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    steps = epochs * (len(x) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    bar = tqdm(total=steps, desc="classifier", disable=not progress)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(len(x) // batch_size):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            xb, yb = x[idx].to(device), y[idx].to(device)
            if augment:
                dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
                xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    return model.eval()


def save_classifier(model: Classifier, path=CLASSIFIER_PATH) -> Path:
    weights = {k: v.half() for k, v in model.state_dict().items()}
    return save_checkpoint({"model_name": "classifier", "weights": weights}, path)


def load_classifier(path=CLASSIFIER_PATH, device="cpu") -> Classifier:
    """The course's shipped MNIST classifier (or one saved by `save_classifier`)."""
    state = load_checkpoint(path, "classifier")
    model = Classifier()
    model.load_state_dict({k: v.float() for k, v in state["weights"].items()})
    return model.to(device).eval().requires_grad_(False)


@torch.no_grad()
def predict(classifier: Classifier, images: torch.Tensor, batch_size: int = 1000):
    """(labels (N,), features (N, 128)) for images (N, 1, 28, 28) in [-1, 1]."""
    device = next(classifier.parameters()).device
    labels, feats = [], []
    for i in range(0, len(images), batch_size):
        f = classifier.features(images[i : i + batch_size].to(device))
        feats.append(f.cpu())
        labels.append(classifier.head(f).argmax(1).cpu())
    return torch.cat(labels), torch.cat(feats)


@torch.no_grad()
def probabilities(classifier: Classifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The classifier's probability of each class, (N, 10) on the CPU, for images (N, 1, 28, 28) in [-1, 1]: the
    softmax of its logits. `.max(1)` gives its confidence and its reading (the class `predict` returns)."""
    device = next(classifier.parameters()).device
    return torch.cat([classifier(images[i : i + batch_size].to(device)).softmax(1).cpu()
                      for i in range(0, len(images), batch_size)])


def _check_labels(labels: torch.Tensor, n: int) -> torch.Tensor:
    """labels as (N,) on the CPU: an (N, 1) column would broadcast against the (N,) readings into an (N, N) table."""
    labels = torch.as_tensor(labels).cpu()
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), one class per image, got {tuple(labels.shape)}"
                         + (": flatten them with labels.reshape(-1)" if labels.numel() == n else ""))
    return labels


def accuracy(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images (N, 1, 28, 28) the classifier reads as the given labels (N,)."""
    labels = _check_labels(labels, len(images))
    return (predict(classifier, images)[0] == labels).float().mean().item()


def edit_distances(classifier: Classifier, source: torch.Tensor, other: torch.Tensor) -> tuple[float, float]:
    """How far edited images are from their sources (lesson 8): (the mean per-image pixel MSE, the mean distance
    between the classifier's features), for pairs source[i], other[i] of shape (N, 1, 28, 28) in [-1, 1]."""
    if source.shape != other.shape:
        raise ValueError(f"source {tuple(source.shape)} and other {tuple(other.shape)} must be pairs of the same shape")
    _, fs = predict(classifier, source)
    _, fo = predict(classifier, other)
    mse = (other.cpu() - source.cpu()).pow(2).mean((1, 2, 3)).mean().item()
    return mse, (fo - fs).norm(dim=1).mean().item()


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """d^2 between Gaussians fitted to two sets of features (N, D) (the FID formula)."""
    from scipy import linalg

    if feats_a.dim() != 2 or feats_b.dim() != 2 or feats_a.shape[1] != feats_b.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D) with the same D, got {tuple(feats_a.shape)} and "
                         f"{tuple(feats_b.shape)}")
    if min(len(feats_a), len(feats_b)) < 2:
        raise ValueError(f"a covariance needs at least 2 feature vectors per set, got {len(feats_a)} and "
                         f"{len(feats_b)} (FD is meaningful for hundreds or thousands of images)")
    a, b = feats_a.double().cpu().numpy(), feats_b.double().cpu().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # the product of two covariances is often near-singular: harmless here
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def diversity(images: torch.Tensor) -> float:
    """Mean pixel standard deviation across a set of images (N, C, H, W), N >= 2: 0 when every image is the same."""
    if images.dim() != 4 or len(images) < 2:
        raise ValueError(f"diversity compares images with each other: give a set (N, C, H, W) of at least 2, "
                         f"got shape {tuple(images.shape)}")
    return images.std(dim=0).mean().item()


class SampleScorer:
    """Scores samples against the MNIST test set with the course classifier: accuracy and FD."""

    def __init__(self, classifier: Classifier | None = None, n_ref: int = 10000):
        self.classifier = classifier or load_classifier()
        test_x, _ = load_mnist("test")
        self.ref_feats = predict(self.classifier, test_x[:n_ref])[1]

    def score(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        pred, feats = predict(self.classifier, images)
        out = {"fd": frechet_distance(feats, self.ref_feats)}
        if labels is not None:
            out["accuracy"] = (pred == _check_labels(labels, len(images))).float().mean().item()
        return out

    def floor(self, n: int) -> float:
        """FD of n real images the classifier never saw (train[50000:]) against the test set."""
        x, _ = load_mnist("train")
        held_out = x[CLASSIFIER_TRAIN:][:n]
        return frechet_distance(predict(self.classifier, held_out)[1], self.ref_feats)
