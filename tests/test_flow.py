"""Lesson 5, flow matching (`diffusionlab/flow.py`, `pipelines/flow.py`): the interpolant and its target, the
solvers on velocity fields with known solutions, guidance, the time scale the UNet sees, reflow and the CLI."""

import pytest
import torch

from diffusionlab import course, flow
from diffusionlab.cli import main
from diffusionlab.models.unet import UNet
from diffusionlab.pipelines.flow import FlowModel, reflow_data


def test_the_interpolant_runs_from_data_at_0_to_noise_at_1_with_velocity_eps_minus_x0():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
    assert torch.equal(flow.interpolate(x0, eps, 0.0), x0)
    assert torch.equal(flow.interpolate(x0, eps, 1.0), eps)
    t = torch.tensor([0.2, 0.5, 0.9])
    xt = flow.interpolate(x0, eps, t)
    assert torch.allclose(xt[1], (x0[1] + eps[1]) / 2)
    # the target is the time derivative of the path (finite difference)
    dt = 1e-3
    numeric = (flow.interpolate(x0, eps, t + dt) - flow.interpolate(x0, eps, t - dt)) / (2 * dt)
    assert torch.allclose(numeric, flow.velocity_target(x0, eps), atol=1e-3)


def test_the_same_network_read_as_x0_and_eps():
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    t = torch.tensor([0.3, 0.8])
    x0_hat, eps_hat = flow.x0_eps_from_velocity(flow.interpolate(x0, eps, t), t, flow.velocity_target(x0, eps))
    assert torch.allclose(x0_hat, x0, atol=1e-6) and torch.allclose(eps_hat, eps, atol=1e-6)


def test_an_euler_step_on_the_exact_velocity_of_a_straight_path_reaches_its_target():
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(4, 1, 5, 5, generator=g), torch.randn(4, 1, 5, 5, generator=g)

    def exact(xt, t):  # the one path through (x0, eps): constant velocity
        return flow.velocity_target(x0, eps)

    for steps in (1, 3):
        out = flow.sample(exact, x1=eps, steps=steps, solver="euler")
        assert torch.allclose(out, x0, atol=1e-5), steps
    # one step by hand
    assert torch.allclose(flow.euler_step(exact(eps, None), 1.0, 0.0, eps), x0)


def test_the_euler_step_is_ddim_on_the_path_with_alpha_1_minus_t_and_sigma_t():
    g = torch.Generator().manual_seed(3)
    xt, v = torch.randn(2, 1, 3, 3, generator=g), torch.randn(2, 1, 3, 3, generator=g)
    t, t_next = 0.7, 0.4
    x0_hat, eps_hat = flow.x0_eps_from_velocity(xt, torch.full((2,), t), v)
    ddim = (1 - t_next) * x0_hat + t_next * eps_hat  # Song et al. eq. 12, eta = 0
    assert torch.allclose(flow.euler_step(v, t, t_next, xt), ddim, atol=1e-6)


def test_heun_is_second_order_and_euler_first_order_on_a_curved_field():
    # dx/dt = x: x(0) = x(1) * exp(-1) exactly
    x1 = torch.ones(1, 1, 1, 1)
    exact = x1 * torch.exp(torch.tensor(-1.0))
    errors = {s: [float((flow.sample(lambda x, t: x, x1=x1, steps=n, solver=s) - exact).abs()) for n in (8, 16)]
              for s in flow.SOLVERS}
    assert 1.7 < errors["euler"][0] / errors["euler"][1] < 2.3  # halving the step halves the error
    assert 3.5 < errors["heun"][0] / errors["heun"][1] < 4.5  # ... quarters it
    assert errors["heun"][1] < errors["euler"][1] / 10


def test_sample_calls_back_after_each_step_and_repeats_with_the_same_generator():
    seen = []
    out = flow.sample(lambda x, t: -x, (2, 1, 3, 3), steps=4, solver="heun", generator=torch.Generator().manual_seed(0),
                      callback=lambda i, t, x: seen.append((i, t)))
    assert seen == [(0, 0.75), (1, 0.5), (2, 0.25), (3, 0.0)]
    again = flow.sample(lambda x, t: -x, (2, 1, 3, 3), steps=4, solver="heun", generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert flow.evaluations(4, "heun") == 7 and flow.evaluations(4, "euler") == 4


def test_heun_ends_with_an_euler_step_at_the_data_as_in_edm():
    # EDM's Algorithm 1: no correction on the step that ends at t = 0, so N Heun steps cost 2N - 1 evaluations
    calls = []

    def v(x, t):
        calls.append(float(t[0]))
        return x * (1 + t.reshape(-1, 1, 1, 1))

    x1 = torch.randn(2, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    heun = flow.sample(v, x1=x1, steps=1, solver="heun")
    assert calls == [1.0]  # the network is never asked at t = 0
    assert torch.equal(heun, flow.sample(v, x1=x1, steps=1, solver="euler"))
    for steps in (1, 2, 5):
        calls.clear()
        flow.sample(v, x1=x1, steps=steps, solver="heun")
        assert len(calls) == flow.evaluations(steps, "heun") == 2 * steps - 1 and 0.0 not in calls
    assert not torch.equal(flow.heun_step(v, 1.0, 0.5, x1), flow.euler_step(v(x1, torch.ones(2)), 1.0, 0.5, x1))


def test_guidance_1_gives_the_conditional_velocity_and_0_the_unconditional():
    g = torch.Generator().manual_seed(4)
    v_u, v_c = torch.randn(2, 1, 3, 3, generator=g), torch.randn(2, 1, 3, 3, generator=g)
    assert torch.allclose(flow.guided_velocity(v_u, v_c, 1.0), v_c, atol=1e-6)
    assert torch.allclose(flow.guided_velocity(v_u, v_c, 0.0), v_u, atol=1e-6)
    assert torch.allclose(flow.guided_velocity(v_u, v_c, 3.0), v_u + 3 * (v_c - v_u))


def test_velocity_fn_with_guidance_1_is_the_conditional_network(tiny_config):
    unet = UNet(tiny_config).eval()
    for p in unet.parameters():  # a network whose output depends on the label
        torch.nn.init.normal_(p, std=0.05)
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([0.2, 0.5, 0.9]), torch.tensor([1, 2, 3])
    with torch.no_grad():
        cond = flow.velocity(unet, x, t, y)
        assert torch.allclose(flow.velocity_fn(unet, y, 1.0)(x, t), cond)
        uncond = flow.velocity(unet, x, t, torch.full((3,), 10))
        assert torch.allclose(flow.velocity_fn(unet, y, 2.5)(x, t), uncond + 2.5 * (cond - uncond), atol=1e-5)


class TimeSpy(torch.nn.Module):
    """Records the time values the network is called with."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"num_classes": 10})()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x, t, y=None):
        self.seen.append(t.detach().clone())
        return x * self.w


def test_training_and_sampling_give_the_unet_the_same_time_scale():
    spy = TimeSpy()
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        flow.flow_loss(spy, torch.zeros(64, 1, 2, 2), torch.zeros(64, dtype=torch.long), g)
    train_t = torch.cat(spy.seen)
    spy.seen.clear()
    flow.sample(flow.velocity_fn(spy, torch.zeros(2, dtype=torch.long), 2.0), (2, 1, 2, 2), steps=50, solver="heun",
                generator=g)
    sample_t = torch.cat(spy.seen)
    assert train_t.is_floating_point() and sample_t.is_floating_point()
    for ts in (train_t, sample_t):  # both cover the same range, [0, TIME_SCALE]
        assert 0 <= float(ts.min()) < 0.05 * flow.TIME_SCALE and 0.95 * flow.TIME_SCALE < float(ts.max()) <= flow.TIME_SCALE
    assert float(sample_t.max()) == flow.TIME_SCALE and float(sample_t.min()) == flow.TIME_SCALE / 50  # t = 1 ... 1/50


def test_flow_loss_regresses_onto_eps_minus_x0_and_reflow_uses_the_given_pairs():
    class Exact(torch.nn.Module):  # answers the true velocity of the given pair: zero loss
        config = type("Config", (), {"num_classes": None})()

        def forward(self, xt, t):
            return self.v

    x0, eps = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    model = Exact()
    model.v = eps - x0
    assert float(flow.reflow_loss(model, torch.cat([x0, eps], 1), None, torch.Generator().manual_seed(0))) == 0.0
    assert float(flow.flow_loss(model, x0, None, torch.Generator().manual_seed(0))) > 0.1  # fresh noise: not zero


def test_straightness_is_zero_for_straight_paths_and_grows_with_the_bend():
    a, b = torch.zeros(1, 4), torch.ones(1, 4)
    ts = torch.linspace(0, 1, 9)[:, None, None]
    straight = (1 - ts) * a + ts * b
    assert flow.straightness(straight) < 1e-10
    bend = torch.sin(torch.pi * ts) * torch.tensor([1.0, -1.0, 0.0, 0.0])
    assert flow.straightness(straight + 0.1 * bend) < flow.straightness(straight + 0.5 * bend)
    assert flow.straightness(straight + 0.1 * bend) > 0.01


@pytest.mark.parametrize("call, message", [
    (lambda: flow.interpolate(torch.zeros(2, 1), torch.zeros(2, 1), torch.tensor([1, 0])), "continuous in [0, 1]"),
    (lambda: flow.interpolate(torch.zeros(2, 1), torch.zeros(2, 1), 1.5), "t must lie in [0, 1]"),
    (lambda: flow.interpolate(torch.zeros(2, 1), torch.zeros(3, 1), 0.5), "must have the same shape"),
    (lambda: flow.sample(lambda x, t: x, (1, 1), steps=2, solver="rk4"), "solver must be one of euler, heun"),
    (lambda: flow.sample(lambda x, t: x, (1, 1), steps=0), "steps must be a positive integer"),
    (lambda: flow.guided_velocity(torch.zeros(1), torch.zeros(1), 50.0), "guidance_scale must be a number"),
])
def test_bad_input_is_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()


@pytest.fixture
def tiny_flow(tmp_path):
    """A flow checkpoint trained for two steps on 64 digits."""
    path = tmp_path / "flow.pt"
    course.train_model("flow", steps=2, batch_size=16, limit=64, checkpoint=path, progress=False)
    return path


def test_flow_model_trains_loads_and_samples_in_range(tiny_flow):
    model = course.load("flow", tiny_flow)
    assert isinstance(model, FlowModel) and model.default_guidance == course.FLOW_GUIDANCE
    x = model.sample(5, labels=[0, 1, 2, 3, 4], steps=2, solver="heun", generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 28, 28) and -1 <= float(x.min()) and float(x.max()) <= 1
    with pytest.raises(ValueError, match="got 2 labels for n=5"):
        model.sample(5, labels=[0, 1])


def test_reflow_trains_from_the_flow_weights_on_its_pairs(tiny_flow, tmp_path):
    model = course.load("flow", tiny_flow)
    pairs = reflow_data(model, 20, steps=2, out=tmp_path / "pairs.pt")
    assert pairs["eps"].shape == pairs["x0"].shape == (20, 1, 28, 28) and pairs["labels"].tolist()[:11] == [*range(10), 0]
    # x0 is the model's ODE solution from eps, with the labels and guidance it was drawn with
    again = model.sample(20, labels=pairs["labels"], steps=2, x1=pairs["eps"])
    assert torch.allclose(again, pairs["x0"], atol=1e-5)
    reflowed, history = course.train_model("reflow", steps=1, batch_size=16, pairs=tmp_path / "pairs.pt", base=tiny_flow,
                                           checkpoint=tmp_path / "reflow.pt", progress=False)
    assert history["step"] == [1] and reflowed.default_guidance == course.REFLOW_GUIDANCE
    loaded = course.load("reflow", tmp_path / "reflow.pt")
    assert loaded.default_guidance == 1.0


def test_cli_samples_the_flow_model_and_makes_reflow_pairs(tiny_flow, tmp_path, capsys):
    out = tmp_path / "s.pt"
    assert main(["sample", "--model", "flow", "--n", "12", "--steps", "3", "--solver", "heun", "--guidance", "2",
                 "--checkpoint", str(tiny_flow), "--out", str(out), "--device", "cpu"]) == 0
    assert "heun 3 steps (5 network evaluations)" in capsys.readouterr().out
    result = torch.load(out, weights_only=True)
    assert result["images"].shape == (12, 1, 28, 28) and 0 <= result["images"].min() and result["images"].max() <= 1
    assert result["labels"].tolist() == [*range(10), 0, 1]
    pairs = tmp_path / "pairs.pt"
    assert main(["make-reflow-pairs", "--n", "16", "--steps", "2", "--checkpoint", str(tiny_flow), "--out", str(pairs),
                 "--device", "cpu"]) == 0
    assert main(["train", "reflow", "--pairs", str(pairs), "--base", str(tiny_flow), "--steps", "1", "--batch-size", "8",
                 "--checkpoint", str(tmp_path / "reflow.pt"), "--device", "cpu"]) == 0
    assert main(["sample", "--model", "reflow", "--n", "4", "--steps", "1", "--checkpoint", str(tmp_path / "reflow.pt"),
                 "--out", str(tmp_path / "r.pt"), "--device", "cpu"]) == 0
    assert "euler 1 steps (1 network evaluations)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["sample", "--model", "cond", "--solver", "heun"], "--solver is an option of the flow models"),
    (["sample", "--model", "flow", "--sampler", "ddim"], "--sampler and --eta are the diffusion models' options"),
    (["train", "reflow", "--steps", "1"], "`train reflow` needs --pairs FILE"),
])
def test_flow_options_in_the_wrong_place_give_one_line_errors(argv, message, capsys):
    assert main(argv + ["--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_exact_velocity_of_a_mixture_carries_noise_to_its_modes():
    means = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
    x1 = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    v = flow.mixture_velocity(means, std=0.05)
    for solver, steps in (("euler", 50), ("heun", 10)):
        x0 = flow.sample(v, x1=x1, steps=steps, solver=solver)
        nearest = torch.cdist(x0, means).min(1).values
        assert float(nearest.max()) < 0.3, solver
    # one Euler step from t = 1 lands on E[x0 | x_1] = E[x0] (x_1 is noise, independent of x0): every point on
    # the mean of the modes
    one = flow.sample(v, x1=x1, steps=1)
    assert torch.allclose(one, means.mean(0).expand_as(one), atol=1e-5)


def test_a_time_per_image_must_match_the_batch():
    """A t of the wrong length failed in broadcasting ("The size of tensor a (3) must match ...")."""
    x0, eps = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    with pytest.raises(ValueError, match="one per image: 2 images"):
        flow.interpolate(x0, eps, torch.tensor([0.5, 0.2, 0.1]))
    assert torch.equal(flow.interpolate(x0, eps, torch.tensor([0.25])), flow.interpolate(x0, eps, 0.25))
