"""`diffusionlab p2p` (lesson 8's prompt-to-prompt) on a tiny text model trained for one step."""

import pytest
import torch

from diffusionlab import cli


@pytest.fixture(scope="module")
def tiny(tiny_latent):
    d = tiny_latent("p2p")
    return ["--checkpoint", str(d / "text.pt"), "--vae", str(d / "vae.pt"), "--steps", "2"]


def test_p2p_writes_source_edited_and_baseline_in_unit_range(tiny, tmp_path, capsys):
    out, png = tmp_path / "e.pt", tmp_path / "e.png"
    rc = cli.main(["p2p", "--prompt", "a thick seven", "--edit", "a thin seven", "--n", "3", "--seed", "1",
                   "--reweight", "thin=2", "--local-blend", "--out", str(out), "--png", str(png), *tiny])
    assert rc == 0, capsys.readouterr().err
    result = torch.load(out, weights_only=True)
    assert set(result) == {"source", "edited", "baseline"}
    for x in result.values():
        assert x.shape == (3, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert png.exists()


def test_p2p_is_reproducible_from_the_seed(tiny, tmp_path):
    runs = []
    for name in ("a.pt", "b.pt"):
        assert cli.main(["p2p", "--prompt", "a seven", "--edit", "a thick seven", "--n", "2", "--seed", "3",
                         "--out", str(tmp_path / name), *tiny]) == 0
        runs.append(torch.load(tmp_path / name, weights_only=True))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


@pytest.mark.parametrize("args, message", [
    (["--edit", "a thinn seven"], "unknown word 'thinn'"),
    (["--edit", "a thin seven", "--reweight", "bold=2"], "'bold'"),
])
def test_bad_words_are_one_line_errors_naming_them(tiny, tmp_path, capsys, args, message):
    rc = cli.main(["p2p", "--prompt", "a thick seven", *args, "--n", "1", "--out", str(tmp_path / "x.pt"), *tiny])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--cross-steps", "1.5"], "fraction of the sampling steps"),
    (["--self-steps", "-0.2"], "fraction of the sampling steps"),
    (["--cross-steps", "most"], "expected a fraction"),
    (["--reweight", "thick"], "WORD=SCALE"),
    (["--reweight", "thick=-1"], "WORD=SCALE"),
])
def test_bad_options_are_one_line_errors(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["p2p", "--prompt", "a thick seven", "--edit", "a thin seven", *args])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_p2p_refuses_an_unwritable_out_before_sampling(tmp_path, capsys):
    assert cli.main(["p2p", "--prompt", "a seven", "--edit", "a two", "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_p2p_defaults_are_the_course_settings():
    from diffusionlab.editing.prompt_to_prompt import CROSS_FRACTION, SELF_FRACTION

    args = cli.build_parser().parse_args(["p2p", "--prompt", "a thick seven", "--edit", "a thin seven"])
    assert (args.cross_steps, args.self_steps) == (CROSS_FRACTION, SELF_FRACTION)
