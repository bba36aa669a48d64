import numpy as np
import pytest
from PIL import Image

from capsdeploy.data.preprocess import decode_image, fit_pixels, load_image, prepare_batch
from capsdeploy.errors import UsageError


def test_png_round_trip_is_lossless(tmp_path):
    px = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(px).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png", channels=1, size=28)
    assert out.shape == (1, 28, 28) and np.array_equal(out[0], px)


def test_letterbox_keeps_aspect_and_pads_black():
    px = np.full((28, 56), 200, np.uint8)  # wide image
    out = fit_pixels(px, 1, 28)
    assert out.shape == (1, 28, 28)
    assert (out[0, :7] == 0).all() and (out[0, -7:] == 0).all()  # 14 rows of content, centred
    assert (out[0, 8:20] == 200).all()


def test_rgb_to_gray_and_invert(tmp_path):
    Image.new("RGB", (28, 28), (255, 255, 255)).save(tmp_path / "w.jpg")
    assert load_image(tmp_path / "w.jpg", 1, 28).max() >= 250
    assert load_image(tmp_path / "w.jpg", 1, 28, invert=True).max() <= 5
    assert load_image(tmp_path / "w.jpg", 3, 28).shape == (3, 28, 28)


def test_npy_layouts(tmp_path):
    px = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
    for arr in (px, px[:, :, None], px[None]):
        np.save(tmp_path / "a.npy", arr)
        assert np.array_equal(load_image(tmp_path / "a.npy", 1, 28)[0], px)
    np.save(tmp_path / "f.npy", px.astype(np.float32))
    with pytest.raises(UsageError, match="uint8"):
        load_image(tmp_path / "f.npy", 1, 28)


def test_non_images_are_clear_errors(tmp_path):
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(UsageError, match="not a readable PNG or JPEG"):
        load_image(tmp_path / "x.png", 1, 28)
    with pytest.raises(UsageError, match="no such file"):
        load_image(tmp_path / "missing.png", 1, 28)
    with pytest.raises(UsageError):
        decode_image(b"GIF89a", 1, 28)


def test_prepare_batch_follows_metadata():
    px = np.full((2, 1, 28, 28), 255, np.uint8)
    assert prepare_batch(px, "uint8", {}).dtype == np.uint8
    norm = {"scale": 1 / 255, "mean": [0.5], "std": [0.5]}
    x = prepare_batch(px, "float32", norm)
    assert x.dtype == np.float32 and np.allclose(x, 1.0)
    assert prepare_batch(px, "float16", norm).dtype == np.float16


@pytest.mark.parametrize("norm", [{"mean": [0.0], "std": [1.0]}, {"mean": [0.1307], "std": [0.3081]}])
def test_numpy_preprocessing_is_bit_identical_to_the_training_tensors(norm):
    """Serving must feed the model exactly what training fed it."""
    import torch

    from capsdeploy.train.augment import normalize_unit, to_unit

    px = np.random.default_rng(2).integers(0, 256, (4, 1, 28, 28), dtype=np.uint8)
    trained = normalize_unit(to_unit(torch.from_numpy(px)), norm).numpy()
    np.testing.assert_array_equal(prepare_batch(px, "float32", norm), trained)
