"""The one place that turns pixels, PNG/JPEG files or .npy arrays into model input.

predict, serve, bench, validate, evaluation and INT8 calibration all call this,
driven by the model's metadata (input dtype, normalization); none re-implements
it. NumPy and Pillow only: it sits below export and runtime, and an ONNX Runtime
deployment runs it without torch.

Image policy: decoded with Pillow; converted to grayscale (ITU-R 601-2 luma) or
RGB to match the model's channels; if the size differs from the model's, the
image is resized (Lanczos) so its longer side fits and is padded with black,
centred ("letterbox": no distortion, nothing cropped). Colours are kept as
they are: MNIST digits are white on black, so pass ``invert=True`` for dark
ink on white paper.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UsageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def prepare_batch(pixels: np.ndarray, input_dtype: str, normalization: dict) -> np.ndarray:
    """uint8 [N, C, H, W] -> the array the graph's ``image`` input takes."""
    if pixels.dtype != np.uint8 or pixels.ndim != 4:
        raise UsageError(f"expected uint8 pixels [N, C, H, W], got {pixels.dtype} {pixels.shape}")
    if input_dtype == "uint8":
        return np.ascontiguousarray(pixels)
    x = normalize(pixels, normalization)
    return x.astype(np.float16 if input_dtype == "float16" else np.float32, copy=False)


def normalize(pixels: np.ndarray, normalization: dict) -> np.ndarray:
    """uint8 [N, C, H, W] -> float32 (pixels / 255 - mean) / std per channel.

    Written as the training loop computes it (divide by 255, then normalize), so
    the float32 results are bit-identical to what the model saw in training.
    """
    x = pixels.astype(np.float32) / np.float32(255.0)
    mean = np.asarray(normalization["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(normalization["std"], np.float32).reshape(1, -1, 1, 1)
    if (mean == 0).all() and (std == 1).all():
        return x
    return (x - mean) / std


MAX_IMAGE_PIXELS = 25_000_000  # a 5000 x 5000 photo; far beyond what a 28 x 28 model needs


def decode_image(
    data: bytes, channels: int, size: int, invert: bool = False, name: str = "upload"
) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 [C, size, size]."""
    try:
        img = Image.open(io.BytesIO(data))
        # The header says how large the image is; refuse a huge one before decoding it.
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise UsageError(
                f"{name}: {img.width}x{img.height} pixels is more than the {MAX_IMAGE_PIXELS:,} accepted; "
                "send a smaller image (the model sees it at its input size anyway)"
            )
        img.load()
    except Image.DecompressionBombError:
        raise UsageError(f"{name}: image too large to decode safely; send a smaller image") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UsageError(f"{name}: not a readable PNG or JPEG image ({type(e).__name__})") from None
    return fit_pixels(np.asarray(img.convert("L" if channels == 1 else "RGB")), channels, size, invert)


def fit_pixels(pixels: np.ndarray, channels: int, size: int, invert: bool = False) -> np.ndarray:
    """uint8 [H, W] or [H, W, C] -> uint8 [C, size, size], letterboxed."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.shape[2] != channels:
        if pixels.shape[2] == 1:
            pixels = np.repeat(pixels, channels, axis=2)
        else:
            raise UsageError(f"image has {pixels.shape[2]} channels, the model takes {channels}")
    h, w = pixels.shape[:2]
    if (h, w) != (size, size):
        scale = size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        mode = "L" if channels == 1 else "RGB"
        img = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)
        resized = np.asarray(img.resize((nw, nh), Image.Resampling.LANCZOS)).reshape(nh, nw, channels)
        canvas = np.zeros((size, size, channels), np.uint8)
        top, left = (size - nh) // 2, (size - nw) // 2
        canvas[top : top + nh, left : left + nw] = resized
        pixels = canvas
    if invert:
        pixels = 255 - pixels
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def load_image(path: str | Path, channels: int, size: int, invert: bool = False) -> np.ndarray:
    """A PNG/JPEG file, or a .npy array (uint8 [H, W], [H, W, C] or [C, H, W]), -> uint8 [C, size, size]."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise UsageError(f"{path}: not a readable .npy array ({e})") from None
        if arr.dtype != np.uint8:
            raise UsageError(f"{path}: .npy arrays must hold uint8 pixels, got {arr.dtype}")
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3):
            arr = arr.transpose(1, 2, 0)
        if arr.ndim not in (2, 3):
            raise UsageError(f"{path}: expected [H, W], [H, W, C] or [C, H, W], got {arr.shape}")
        return fit_pixels(arr, channels, size, invert)
    return decode_image(path.read_bytes(), channels, size, invert, name=str(path))
