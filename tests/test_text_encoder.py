import pytest
import torch

from diffusionlab.captions import VOCAB, make_caption
from diffusionlab.models.text_encoder import TextEncoder, TextEncoderConfig, Tokenizer


def test_unknown_word_names_it_and_the_closest_words():
    with pytest.raises(ValueError, match=r"unknown word 'thik'.*Did you mean 'thick'"):
        Tokenizer().encode(["a seven", "a thik seven"])


def test_unknown_word_without_close_match_lists_the_vocabulary():
    with pytest.raises(ValueError, match=r"unknown word 'zebra'.*knows only the \d+ words.*seven"):
        Tokenizer().encode("a zebra")


def test_encode_pads_and_starts_every_caption():
    tok = Tokenizer(max_length=6)
    ids = tok.encode(["A thick Seven.", ""])
    assert ids.shape == (2, 6) and ids.dtype == torch.long
    assert ids[:, 0].tolist() == [1, 1]  # the start token
    assert ids[1, 1:].tolist() == [0] * 5  # the empty caption: start token, then padding
    assert tok.decode(ids) == ["a thick seven", ""]


def test_too_long_caption_says_how_many_fit():
    with pytest.raises(ValueError, match="at most 3 fit"):
        Tokenizer(max_length=4).encode("a thick small seven")


def test_every_generated_caption_fits_the_default_length():
    tok, g = Tokenizer(), torch.Generator().manual_seed(0)
    for i in range(300):
        cap = make_caption(i % 10, {"thickness": 1, "size": -1, "slant": 1}, g, p_attribute=1.0)
        tok.tokenize(cap)  # raises if too long


def test_vocabulary_size_matches_the_config():
    assert len(Tokenizer()) == TextEncoderConfig().vocab_size == len(VOCAB) + 2


def test_encoder_gives_one_embedding_per_token_independent_of_the_batch():
    enc = TextEncoder(TextEncoderConfig(width=16, heads=2)).eval()
    ids = Tokenizer().encode(["a thick seven", "", "the digit 4, written thin"])
    out = enc(ids)
    assert out.shape == (3, 12, 16)
    assert torch.allclose(enc(ids[1:2]), out[1:2], atol=1e-6)  # no mixing between captions
    assert not torch.allclose(out[0], out[1])  # different captions, different context


def test_encoder_rejects_too_many_tokens():
    enc = TextEncoder(TextEncoderConfig(max_length=4))
    with pytest.raises(ValueError, match="L <= 4"):
        enc(torch.zeros(1, 5, dtype=torch.long))
