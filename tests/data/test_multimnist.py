"""MultiMNIST: two digits of different classes, each shifted up to 4 px, overlaid by max."""

import numpy as np
import pytest

from capsdeploy.data import load_split
from capsdeploy.data.canvas import center, ink_box, shift
from capsdeploy.data.multimnist import make_pairs


@pytest.fixture
def digits(mnist_dir):
    return load_split("mnist", "t10k", mnist_dir, download=False, limit=300)


def test_pairs_shapes_labels_and_determinism(digits):
    a, b = make_pairs(digits, pairs_per_digit=2, seed=5), make_pairs(digits, pairs_per_digit=2, seed=5)
    assert a.images.shape == (600, 1, 36, 36) and a.labels.shape == (600, 2)
    assert a.parts.shape == (600, 2, 1, 36, 36)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, make_pairs(digits, pairs_per_digit=2, seed=6).images)
    assert (a.labels[:, 0] != a.labels[:, 1]).all()  # the two classes always differ
    assert np.array_equal(a.labels, digits.labels[a.sources])  # each label is its digit's
    assert np.array_equal(a.sources[:, 0], np.repeat(np.arange(300), 2))  # every digit used as base
    assert np.abs(a.shifts).max() == 4 and len(np.unique(a.shifts)) == 9  # -4..4, all used


def test_overlay_is_the_pixelwise_max_of_the_shifted_digits(digits):
    pairs = make_pairs(digits, seed=1)
    padded = center(digits.images, 36)
    for j in range(0, len(pairs), 37):
        for k in range(2):
            expected = shift(padded[pairs.sources[j, k]], *pairs.shifts[j, k])
            assert np.array_equal(pairs.parts[j, k], expected)
        assert np.array_equal(pairs.images[j], np.maximum(pairs.parts[j, 0], pairs.parts[j, 1]))


def test_digits_overlap_as_in_the_paper(digits):
    """The paper reports 80% bounding-box overlap on average; shifts of at most 4 px give that."""
    pairs = make_pairs(digits, seed=2)
    overlaps = []
    for p in pairs.parts:
        (t0, b0, l0, r0), (t1, b1, l1, r1) = ink_box(p[0]), ink_box(p[1])
        inter = max(0, min(b0, b1) - max(t0, t1) + 1) * max(0, min(r0, r1) - max(l0, l1) + 1)
        smaller = min((b0 - t0 + 1) * (r0 - l0 + 1), (b1 - t1 + 1) * (r1 - l1 + 1))
        overlaps.append(inter / smaller)
    assert 0.7 < np.mean(overlaps) <= 1.0, np.mean(overlaps)
    # Shifts never cut a digit: all of each digit's ink survives on the canvas.
    for j in range(len(pairs)):
        for k in range(2):
            assert pairs.parts[j, k].astype(int).sum() == digits.images[pairs.sources[j, k]].astype(int).sum()
