import pytest
import torch

from diffusionlab.metrics import Classifier, diversity, frechet_distance


def test_frechet_distance_properties():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 8, generator=g)
    b = torch.randn(2000, 8, generator=g)
    assert frechet_distance(a, a) < 1e-6
    same = frechet_distance(a, b)
    shifted = frechet_distance(a, b + 1.0)
    assert same < 0.1
    assert abs(shifted - same - 8.0) < 0.3  # ||mu_a - mu_b||^2 = 8 * 1^2


def test_classifier_shapes_and_diversity():
    model = Classifier().eval()
    x = torch.randn(5, 1, 28, 28)
    assert model(x).shape == (5, 10) and model.features(x).shape == (5, 128)
    assert diversity(x[:1].repeat(4, 1, 1, 1)) == 0


def test_edit_distances_are_zero_for_the_same_images_and_grow_with_the_change():
    from diffusionlab.metrics import Classifier, edit_distances

    torch.manual_seed(0)
    clf = Classifier().eval()
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    assert edit_distances(clf, x, x) == (0.0, 0.0)
    small, large = edit_distances(clf, x, x.flip(-1) * 0.1 + x * 0.9), edit_distances(clf, x, x.flip(-1))
    assert 0 < small[0] < large[0] and 0 < small[1] < large[1]
    assert abs(large[0] - (x.flip(-1) - x).pow(2).mean().item()) < 1e-6
    with pytest.raises(ValueError, match="pairs of the same shape"):
        edit_distances(clf, x, x[:2])


def test_probabilities_are_the_softmax_of_the_classifier_and_agree_with_predict():
    from diffusionlab.metrics import predict, probabilities

    torch.manual_seed(0)
    clf = Classifier().eval()
    x = torch.rand(7, 1, 28, 28) * 2 - 1
    p = probabilities(clf, x, batch_size=3)  # three batches: 3, 3, 1
    assert p.shape == (7, 10) and p.device.type == "cpu"
    torch.testing.assert_close(p.sum(1), torch.ones(7))
    with torch.no_grad():
        torch.testing.assert_close(p, clf(x).softmax(1))
    assert torch.equal(p.argmax(1), predict(clf, x)[0])


def test_bad_shapes_are_refused_instead_of_broadcast():
    """Labels (N, 1) broadcast against the (N,) readings into an (N, N) table whose mean is not an accuracy; one
    feature vector gave scipy's "Internal error in scipy.linalg.sqrtm"."""
    import pytest

    from diffusionlab.metrics import accuracy

    classifier = Classifier().eval()
    images = torch.rand(6, 1, 28, 28) * 2 - 1
    labels = torch.arange(6)
    with pytest.raises(ValueError, match=r"shape \(6,\).*reshape\(-1\)"):
        accuracy(classifier, images, labels[:, None])
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        accuracy(classifier, images, labels[:5])
    assert 0 <= accuracy(classifier, images, labels) <= 1
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(torch.randn(1, 4), torch.randn(10, 4))
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(torch.randn(10, 4), torch.randn(10, 5))


def test_diversity_needs_a_set():
    """One image gave NaN (the standard deviation of one value) with only a warning."""
    import pytest

    with pytest.raises(ValueError, match="at least 2"):
        diversity(torch.zeros(1, 1, 28, 28))
    assert diversity(torch.zeros(3, 1, 28, 28)) == 0
