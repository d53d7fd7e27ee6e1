"""Fine-tuning the lesson-7 text model on printed digits (finetune.py, lesson 8), on tiny untrained models."""

import pytest
import torch

from diffusionlab import finetune, printed
from diffusionlab.models.attention import Attention
from diffusionlab.models.lora import LoRAConv2d, LoRALinear
from diffusionlab.models.text_encoder import TextEncoderConfig, Tokenizer
from diffusionlab.models.unet import UNetConfig
from diffusionlab.models.vae import VAE, VAEConfig
from diffusionlab.pipelines.latent import LatentDiffusion, TextToLatent
from diffusionlab.schedules import NoiseSchedule

TINY_TEXT = TextEncoderConfig(width=16, heads=2, layers=1)
TINY_UNET = UNetConfig(in_channels=4, out_channels=4, image_size=8, channels=(8, 16), attention=(False, True),
                       context_dim=16, heads=2)
TINY = finetune.FinetuneRecipe(n_images=20, batch_size=10, warmup=1, prior_images=10)


def tiny_base() -> LatentDiffusion:
    torch.manual_seed(0)
    model = TextToLatent(TINY_UNET, TINY_TEXT).eval()
    for p in model.unet.out.parameters():  # the UNet starts by predicting zero: give it an output
        torch.nn.init.normal_(p, std=0.1)
    return LatentDiffusion(VAE(VAEConfig(channels=(8, 8, 16))).eval(), model, NoiseSchedule(T=100), Tokenizer())


@pytest.fixture(scope="module")
def data():
    return printed.make_printed(20, seed=0)


def eps(pipe, prompts, seed=0):
    g = torch.Generator().manual_seed(seed)
    z, t = torch.randn(len(prompts), 4, 8, 8, generator=g), torch.full((len(prompts),), 50)
    with torch.no_grad():
        return pipe.eps_fn(prompts, 3.0)(z, t)


def test_new_words_come_after_the_old_ones_so_old_captions_are_encoded_as_before():
    base = tiny_base()
    pipe = finetune.prepare(base)
    assert pipe.tokenizer.vocab[: len(base.tokenizer)] == base.tokenizer.vocab
    assert set(finetune.STYLE_WORDS) <= set(pipe.tokenizer.vocab) and not set(finetune.STYLE_WORDS) & set(base.tokenizer.vocab)
    assert pipe.model.text_encoder.token_emb.num_embeddings == len(pipe.tokenizer) == pipe.model.text_encoder.config.vocab_size
    old = ["a thick seven", "the digit 2, written thin", ""]
    assert torch.equal(pipe.tokenizer.encode(old), base.tokenizer.encode(old))
    assert torch.allclose(eps(pipe, old), eps(base, old))  # the same model for the old words
    pipe.tokenizer.encode(["a printed serif seven", "a mono 3"])  # the new words are known
    with pytest.raises(ValueError, match="unknown word 'printed'"):
        base.tokenizer.encode("a printed seven")  # the base pipeline is left as it was


def test_lora_starts_at_the_base_model_and_trains_only_its_low_rank_matrices_and_the_embeddings():
    base = tiny_base()
    full, lora = finetune.prepare(base), finetune.prepare(base, lora=2)
    old = ["a thick seven", "a 2 leaning left"]
    assert torch.allclose(eps(lora, old), eps(base, old), atol=1e-6)  # B = 0: the base model exactly
    wrapped = [m for m in lora.model.modules() if isinstance(m, LoRALinear)]
    attention = [m for m in base.model.modules() if isinstance(m, Attention)]  # the UNet's and the text encoder's
    assert len(wrapped) == 4 * len(attention)  # to_q, to_k, to_v, to_out of each
    convs = [m for m in base.model.unet.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    conv_loras = [m for m in lora.model.unet.modules() if isinstance(m, LoRAConv2d)]
    assert len(conv_loras) == len(convs) and all(m.rank == finetune.FINETUNE_RECIPE.lora_conv_rank for m in conv_loras)
    names = {n for n, p in lora.model.named_parameters() if p.requires_grad}
    assert names and all(n.endswith((".A", ".B")) or n == "text_encoder.token_emb.weight" for n in names)
    # exactly the low-rank matrices: r (d_in + d_out) per linear layer, r (c_in k k + c_out) per convolution, and
    # the embedding table (its old rows are held, tested below)
    expected = sum(m.A.numel() + m.B.numel() for m in lora.model.modules() if isinstance(m, (LoRALinear, LoRAConv2d)))
    expected += lora.model.text_encoder.token_emb.weight.numel()
    assert sum(p.numel() for p in lora.model.parameters() if p.requires_grad) == expected
    assert all(m.A.numel() == m.rank * m.base.weight[0].numel() and m.B.numel() == m.base.out_channels * m.rank
               for m in conv_loras)
    with pytest.raises(ValueError, match="lora or from_scratch"):
        finetune.prepare(base, lora=2, from_scratch=True)


def test_lora_training_moves_only_the_lora_matrices_and_the_new_words(data):
    base = tiny_base()
    pipe = finetune.prepare(base, lora=2)
    model = pipe.model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    z0 = torch.randn(8, 4, 8, 8)
    codes = finetune.printed_codes(data)[:8]
    for step in range(2):
        loss = finetune.finetune_loss(model, z0, codes, torch.Generator().manual_seed(step), pipe.schedule, pipe.tokenizer)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = dict(model.named_parameters())
    old_rows = len(base.tokenizer)
    emb = "text_encoder.token_emb.weight"
    assert torch.equal(after[emb][:old_rows], before[emb][:old_rows])  # the old words are held
    assert not torch.equal(after[emb][old_rows:], before[emb][old_rows:])  # the new words learn
    for n, p in after.items():
        if n != emb:
            moved = not torch.equal(p, before[n])
            assert moved == n.endswith((".A", ".B")), n  # every LoRA matrix moved, nothing frozen did


@pytest.mark.parametrize("lora", [None, 2])
def test_finetune_saves_a_checkpoint_that_loads_as_the_returned_model_and_resumes(tmp_path, data, lora):
    path = tmp_path / "printed.pt"
    pipe, history = finetune.finetune_text(tiny_base(), lora=lora, steps=2, checkpoint=path, recipe=TINY, data=data,
                                           progress=False)
    assert history["step"] == [1, 2]
    assert (history["trainable"] < history["parameters"]) if lora else (history["trainable"] == history["parameters"])
    assert not any(isinstance(m, LoRALinear) for m in pipe.model.modules())  # merged
    loaded = finetune.load(path, vae=pipe.vae)
    prompts = ["a printed seven", "a serif 3", "a thick seven"]
    assert loaded.tokenizer.vocab == pipe.tokenizer.vocab
    assert torch.allclose(eps(loaded, prompts), eps(pipe, prompts), atol=1e-5)
    _, resumed = finetune.finetune_text(tiny_base(), lora=lora, steps=3, checkpoint=path, recipe=TINY, data=data,
                                        progress=False)
    assert resumed["step"] == [1, 2, 3]


def test_from_scratch_is_a_fresh_model_of_the_same_shape(data):
    base = tiny_base()
    scratch = finetune.prepare(base, from_scratch=True, seed=1)
    assert [p.shape for p in scratch.model.parameters()] == [p.shape for p in finetune.prepare(base).model.parameters()]
    assert not torch.allclose(eps(scratch, ["a seven"]), eps(base, ["a seven"]))


def test_a_bad_rank_is_refused():
    with pytest.raises(ValueError, match="rank of the LoRA update"):
        finetune.finetune_text(tiny_base(), lora=0, steps=1)


def test_printed_and_handwritten_rows_get_their_own_captions(data):
    from diffusionlab.captions import WORDS

    printed_rows = finetune.printed_codes(data)[:6]
    hand = finetune.handwritten_codes(torch.tensor([[7, 1, 0, -1], [2, -1, 1, 0], [0, 0, 0, 0]]))
    texts = finetune.write_captions(torch.cat([printed_rows, hand]), torch.Generator().manual_seed(0))
    style_words = set(finetune.STYLE_WORDS)
    assert all(style_words & set(t.split()) for t in texts[:6])  # "a printed 7", "a serif two", ...
    assert not any(style_words & set(t.split()) for t in texts[6:])  # lesson 7's captions
    assert ("seven" in texts[6] or "7" in texts[6]) and ("two" in texts[7] or "2" in texts[7])
    thin_words = {w for phrase in WORDS["thickness"][0] for w in phrase.split()}
    assert not thin_words & set(texts[6].split())  # the seven is thick (side +1), never called thin


def test_finetuning_rehearses_handwritten_digits_beside_the_printed_ones(data, monkeypatch):
    """Without them every caption says "printed", the word carries nothing and "a seven" drifts to print."""
    seen = {}

    def spy(model, loss_fn, z0, codes, **kwargs):
        seen["z0"], seen["codes"] = z0, codes
        raise KeyboardInterrupt

    monkeypatch.setattr(finetune, "train", spy)
    with pytest.raises(KeyboardInterrupt):
        finetune.finetune_text(tiny_base(), steps=1, recipe=TINY, data=data, progress=False)
    kinds = seen["codes"][:, 0]
    assert (kinds == finetune.PRINTED).sum() == 20 and (kinds == finetune.HANDWRITTEN).sum() == 10
    assert len(seen["z0"]) == 30


def test_a_lora_runs_share_of_trainable_parameters_is_counted_against_the_models_own_size(data):
    _, full = finetune.finetune_text(tiny_base(), steps=1, recipe=TINY, data=data, progress=False)
    _, lora = finetune.finetune_text(tiny_base(), lora=2, steps=1, recipe=TINY, data=data, progress=False)
    assert full["trainable"] == full["parameters"]  # full fine-tuning trains the whole model, new words included
    assert lora["parameters"] == full["parameters"]  # the same model: LoRA's own matrices are not part of it
    assert 0 < lora["trainable"] < lora["parameters"]
