"""The public baseline of the benchmarks: the classic conditional-MNIST ContextUnet + DDPM recipe.

Reproduces Tea Pearce, "Conditional_Diffusion_MNIST" (github.com/TeaPearce/Conditional_Diffusion_MNIST,
2022, `script.py`, itself derived from cloneofsimo/minDiffusion): DDPM (Ho et al. 2020) with
classifier-free guidance (Ho & Salimans 2022) on MNIST. Re-written here from its description;
its settings are the published ones:

    network     ContextUnet(in_channels=1, n_feat=128, n_classes=10): BatchNorm+GELU conv blocks,
                MaxPool down, ConvTranspose up, a 1x1 bottleneck vector (AvgPool2d(7)), time t/n_T and
                one-hot class embedded by small MLPs and applied as `cemb * h + temb` at two levels
    diffusion   n_T = 400, linear betas from 1e-4 to 0.02, t ~ Uniform{1..n_T}, eps-prediction, MSE
    guidance    the class is dropped (one-hot set to zero) with probability drop_prob = 0.1;
                sampling uses eps = (1 + w) eps_cond - w eps_uncond with w = 2 (= guidance_scale 3 in
                the notation of `diffusionlab.guidance`, eps_uncond + s (eps_cond - eps_uncond))
    sampler     its own ancestral DDPM loop over all n_T steps, sigma_t = sqrt(beta_t), no clipping
    training    Adam, lr 1e-4 decayed linearly over its 20 epochs (lr (1 - epoch / 20)), batch 256,
                images in [0, 1] (torchvision's ToTensor, no normalisation), fp32

What differs, and why: the benchmark trains for a time budget rather than 20 epochs, so the 20
steps of the learning-rate staircase are spread over the budget (`train_baseline`); randomness goes
through seeded generators; mixed precision is the caller's choice, so that both recipes run with
the same arithmetic on the same machine. Samples come out in [0, 1] and are clamped there (as the
original's `save_image` does) before being mapped to [-1, 1] for the course's metrics.
"""

from __future__ import annotations

import contextlib
import time

import torch
import torch.nn.functional as F
from torch import nn

from diffusionlab.train import check_budget

# the published settings
N_FEAT = 128
N_CLASSES = 10
N_T = 400
BETAS = (1e-4, 0.02)
DROP_PROB = 0.1
BATCH_SIZE = 256
LR = 1e-4
N_EPOCH = 20
GUIDE_W = 2.0  # its guidance weight w; guidance_scale = 1 + w in diffusionlab's notation


class ResidualConvBlock(nn.Module):
    """(conv3x3 -> BatchNorm -> GELU) twice; with is_res, a residual connection scaled by 1/1.414."""

    def __init__(self, c_in: int, c_out: int, is_res: bool = False):
        super().__init__()
        self.same_channels = c_in == c_out
        self.is_res = is_res
        self.conv1 = nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.GELU())
        self.conv2 = nn.Sequential(nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.conv1(x)
        h2 = self.conv2(h1)
        if not self.is_res:
            return h2
        # when the width changes, the residual is taken from the first conv's output
        return ((x if self.same_channels else h1) + h2) / 1.414


class UnetDown(nn.Module):
    """A conv block, then halve H and W with max-pooling."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.model = nn.Sequential(ResidualConvBlock(c_in, c_out), nn.MaxPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnetUp(nn.Module):
    """Concatenate the skip, double H and W with a 2x2 transposed conv, then two conv blocks."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.model = nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 2, 2),
                                   ResidualConvBlock(c_out, c_out), ResidualConvBlock(c_out, c_out))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([x, skip], dim=1))


class EmbedFC(nn.Module):
    """Linear -> GELU -> Linear, embedding a (B, input_dim) vector (time, or one-hot class)."""

    def __init__(self, input_dim: int, emb_dim: int):
        super().__init__()
        self.input_dim = input_dim
        self.model = nn.Sequential(nn.Linear(input_dim, emb_dim), nn.GELU(), nn.Linear(emb_dim, emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.reshape(-1, self.input_dim))


class ContextUnet(nn.Module):
    """forward(x (B, 1, 28, 28), c (B,) labels, t (B,) in (0, 1], context_mask (B,) 1 = drop the label) -> eps."""

    def __init__(self, in_channels: int = 1, n_feat: int = N_FEAT, n_classes: int = N_CLASSES):
        super().__init__()
        if n_feat % 8:
            raise ValueError(f"n_feat must be divisible by 8 (GroupNorm(8, n_feat)), got {n_feat}")
        self.in_channels, self.n_feat, self.n_classes = in_channels, n_feat, n_classes
        self.init_conv = ResidualConvBlock(in_channels, n_feat, is_res=True)
        self.down1 = UnetDown(n_feat, n_feat)
        self.down2 = UnetDown(n_feat, 2 * n_feat)
        self.to_vec = nn.Sequential(nn.AvgPool2d(7), nn.GELU())
        self.timeembed1 = EmbedFC(1, 2 * n_feat)
        self.timeembed2 = EmbedFC(1, n_feat)
        self.contextembed1 = EmbedFC(n_classes, 2 * n_feat)
        self.contextembed2 = EmbedFC(n_classes, n_feat)
        self.up0 = nn.Sequential(nn.ConvTranspose2d(2 * n_feat, 2 * n_feat, 7, 7),  # (B, 2nf, 1, 1) -> (B, 2nf, 7, 7)
                                 nn.GroupNorm(8, 2 * n_feat), nn.ReLU())
        self.up1 = UnetUp(4 * n_feat, n_feat)
        self.up2 = UnetUp(2 * n_feat, n_feat)
        self.out = nn.Sequential(nn.Conv2d(2 * n_feat, n_feat, 3, 1, 1), nn.GroupNorm(8, n_feat), nn.ReLU(),
                                 nn.Conv2d(n_feat, in_channels, 3, 1, 1))

    def forward(self, x, c, t, context_mask):
        nf = self.n_feat
        x = self.init_conv(x)  # (B, nf, 28, 28)
        down1 = self.down1(x)  # (B, nf, 14, 14)
        down2 = self.down2(down1)  # (B, 2nf, 7, 7)
        hidden = self.to_vec(down2)  # (B, 2nf, 1, 1)

        # one-hot class, zeroed where the context is dropped. (The original multiplies by
        # -(1 - mask), a sign flip that the symmetric initialisation of the first Linear absorbs.)
        keep = (1 - context_mask.float())[:, None]  # (B, 1)
        c = F.one_hot(c, self.n_classes).float() * keep  # (B, n_classes)
        cemb1 = self.contextembed1(c).view(-1, 2 * nf, 1, 1)
        temb1 = self.timeembed1(t).view(-1, 2 * nf, 1, 1)
        cemb2 = self.contextembed2(c).view(-1, nf, 1, 1)
        temb2 = self.timeembed2(t).view(-1, nf, 1, 1)

        up1 = self.up0(hidden)  # (B, 2nf, 7, 7)
        up2 = self.up1(cemb1 * up1 + temb1, down2)  # (B, nf, 14, 14)
        up3 = self.up2(cemb2 * up2 + temb2, down1)  # (B, nf, 28, 28)
        return self.out(torch.cat([up3, x], dim=1))  # (B, 1, 28, 28)


def ddpm_schedules(beta1: float = BETAS[0], beta2: float = BETAS[1], T: int = N_T) -> dict:
    """Its tables for t = 0..T (T + 1 entries; training and sampling use t = 1..T)."""
    beta_t = (beta2 - beta1) * torch.arange(0, T + 1, dtype=torch.float32) / T + beta1
    alpha_t = 1 - beta_t
    alphabar_t = torch.cumsum(torch.log(alpha_t), dim=0).exp()
    return {
        "beta_t": beta_t,
        "sqrt_beta_t": beta_t.sqrt(),
        "oneover_sqrta": 1 / alpha_t.sqrt(),
        "sqrtab": alphabar_t.sqrt(),
        "sqrtmab": (1 - alphabar_t).sqrt(),
        "mab_over_sqrtmab": (1 - alpha_t) / (1 - alphabar_t).sqrt(),
    }


class BaselineDDPM(nn.Module):
    """The ContextUnet with its DDPM: `loss` for training, `sample` for its guided ancestral sampler."""

    def __init__(self, nn_model: ContextUnet | None = None, betas=BETAS, n_T: int = N_T, drop_prob: float = DROP_PROB):
        super().__init__()
        self.nn_model = nn_model if nn_model is not None else ContextUnet()
        for k, v in ddpm_schedules(betas[0], betas[1], n_T).items():
            self.register_buffer(k, v)
        self.n_T, self.drop_prob = n_T, drop_prob

    def loss(self, x0: torch.Tensor, c: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x0 (B, 1, 28, 28) in [0, 1], c (B,) labels: MSE between the noise and its prediction."""
        B, device = x0.shape[0], x0.device
        t = torch.randint(1, self.n_T + 1, (B,), generator=generator, device=device)
        eps = torch.randn(x0.shape, generator=generator, device=device)
        xt = self.sqrtab[t, None, None, None] * x0 + self.sqrtmab[t, None, None, None] * eps
        context_mask = torch.bernoulli(torch.full((B,), self.drop_prob, device=device), generator=generator)
        return F.mse_loss(self.nn_model(xt, c, t / self.n_T, context_mask).float(), eps)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, guide_w: float = GUIDE_W, generator: torch.Generator | None = None,
               autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
        """Images (n, 1, 28, 28) in [0, 1] (clamped) for the (n,) labels, with its guided DDPM loop."""
        device = self.sqrtab.device
        n = len(labels)
        labels = labels.to(device)
        x = torch.randn((n, 1, 28, 28), generator=generator, device=device)
        c = torch.cat([labels, labels])  # the batch is doubled: conditional, then unconditional
        mask = torch.cat([torch.zeros(n, device=device), torch.ones(n, device=device)])
        amp = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
               else contextlib.nullcontext())
        for i in range(self.n_T, 0, -1):
            t = torch.full((2 * n,), i / self.n_T, device=device)
            z = torch.randn(x.shape, generator=generator, device=device) if i > 1 else 0
            with amp:
                out = self.nn_model(torch.cat([x, x]), c, t, mask)
            eps_cond, eps_uncond = out.float().chunk(2)
            eps = (1 + guide_w) * eps_cond - guide_w * eps_uncond
            x = self.oneover_sqrta[i] * (x - eps * self.mab_over_sqrtmab[i]) + self.sqrt_beta_t[i] * z
        return x.clamp(0, 1)


def train_baseline(ddpm: BaselineDDPM, images: torch.Tensor, labels: torch.Tensor, *, steps: int | None = None,
                   minutes: float | None = None, batch_size: int = BATCH_SIZE, lr: float = LR, n_epoch: int = N_EPOCH,
                   seed: int = 0, autocast_dtype: torch.dtype | None = None, on_step=None) -> dict:
    """Its training loop (Adam, linear lr staircase over `n_epoch` stairs) for `steps` or `minutes`.

    images: (N, 1, 28, 28) in [0, 1]. The staircase lr (1 - k / n_epoch) is spread over the budget:
    k counts twentieths of the steps, or of the minutes, so the full published decay fits any budget.
    on_step(step) is called after every optimizer step (the benchmark times steps with it).
    Returns {"steps": ..., "loss": [...], "seconds": ...}.
    """
    check_budget(steps, minutes)
    device = ddpm.sqrtab.device
    if len(images) < batch_size:
        raise ValueError(f"batch_size {batch_size} is larger than the {len(images)} training images")
    images, labels = images.to(device), labels.to(device)
    g_order = torch.Generator().manual_seed(seed)
    g = torch.Generator(device=device).manual_seed(seed + 1)
    opt = torch.optim.Adam(ddpm.parameters(), lr=lr)
    amp = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
           else contextlib.nullcontext())
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
    history, step, start = [], 0, time.perf_counter()
    perm, pos = torch.randperm(len(images), generator=g_order).to(device), 0
    ddpm.train()
    while True:
        elapsed = time.perf_counter() - start
        if (steps is not None and step >= steps) or (minutes is not None and elapsed > minutes * 60):
            break
        done = step / steps if steps is not None else 0.0
        if minutes is not None:
            done = max(done, elapsed / (minutes * 60))
        opt.param_groups[0]["lr"] = lr * (1 - int(n_epoch * done) / n_epoch)
        if pos + batch_size > len(images):  # a new epoch (the original also trains on the last, partial batch)
            perm, pos = torch.randperm(len(images), generator=g_order).to(device), 0
        idx = perm[pos : pos + batch_size]
        pos += batch_size
        with amp:
            loss = ddpm.loss(images[idx], labels[idx], g)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        step += 1
        history.append(loss.item())
        if on_step is not None:
            on_step(step)
    ddpm.eval()
    return {"steps": step, "loss": history, "seconds": time.perf_counter() - start}
