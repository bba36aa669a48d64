"""The translated and affNIST-style sets: deterministic, labels kept, ranges respected,
every digit whole inside the canvas."""

import numpy as np
import pytest

from capsdeploy.data import load_split
from capsdeploy.data.affine import AffineRanges, affine_matrix, affine_set, translated_set
from capsdeploy.data.canvas import center, ink_box


@pytest.fixture
def digits(mnist_dir):
    return load_split("mnist", "t10k", mnist_dir, download=False, limit=200)


def test_translated_set_moves_digits_whole_and_keeps_labels(digits):
    a, b = translated_set(digits, seed=3), translated_set(digits, seed=3)
    assert a.images.shape == (200, 1, 40, 40) and np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, translated_set(digits, seed=4).images)
    assert np.array_equal(a.labels, digits.labels)
    # Translation only: every pixel value arrives, the ink is the same, and positions vary.
    assert np.array_equal(a.images.reshape(200, -1).sum(1), digits.images.reshape(200, -1).sum(1))
    tops = {ink_box(img)[0] - ink_box(src)[0] for img, src in zip(a.images, digits.images, strict=True)}
    assert min(tops) == 0 and max(tops) == 12 and len(tops) == 13


def test_affine_set_is_deterministic_and_respects_its_ranges(digits):
    ranges = AffineRanges()
    a, params = affine_set(digits, seed=7)
    b, _ = affine_set(digits, seed=7)
    assert a.images.shape == (200, 1, 40, 40) and np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, affine_set(digits, seed=8)[0].images)
    assert np.array_equal(a.labels, digits.labels) and a.split == "t10k[affine]"
    assert np.abs(params["rotation_deg"]).max() <= ranges.max_rotation_deg
    assert np.abs(params["rotation_deg"]).max() > 0.9 * ranges.max_rotation_deg  # the range is used
    for k in ("shear_x", "shear_y"):
        assert np.abs(params[k]).max() <= ranges.max_shear
    for k in ("scale_x", "scale_y"):
        assert ranges.min_scale <= params[k].min() and params[k].max() <= ranges.max_scale


def test_affine_digits_stay_inside_the_canvas(digits):
    from capsdeploy.data.affine import transform_about_center

    images, params = affine_set(digits, seed=1)
    centred = center(digits.images, 40)
    keys = ("rotation_deg", "shear_x", "shear_y", "scale_x", "scale_y")
    for i, img in enumerate(images.images):
        warped = transform_about_center(centred[i], affine_matrix(*(params[k][i] for k in keys)))
        # The translation moved every bit of ink and cut none at the border.
        assert img.astype(int).sum() == warped.astype(int).sum()
        # And the warp itself kept the digit (its ink scales with the area, up to resampling).
        area = params["scale_x"][i] * params["scale_y"][i]
        assert 0.85 < warped.astype(float).sum() / (digits.images[i].astype(float).sum() * area) < 1.15


def test_identity_transform_leaves_the_centred_digit_unchanged(digits):
    from capsdeploy.data.affine import transform_about_center

    centred = center(digits.images[:5], 40)
    for img in centred:
        assert np.array_equal(transform_about_center(img, affine_matrix(0, 0, 0, 1, 1)), img)


def test_rotation_turns_the_digit_the_stated_way():
    # A horizontal bar rotated by +90 degrees becomes a vertical bar.
    img = np.zeros((1, 41, 41), np.uint8)
    img[0, 20, 10:31] = 255
    from capsdeploy.data.affine import transform_about_center

    out = transform_about_center(img, affine_matrix(90, 0, 0, 1, 1))
    top, bottom, left, right = ink_box(out)
    assert bottom - top >= 19 and right - left <= 2
