import torch

from capsdeploy.train.augment import random_shifts, shift_images


def test_shift_matches_manual_zero_padded_translation():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5) + 1
    shifts = torch.tensor([[1, -2], [0, 0]])
    y = shift_images(x, shifts)
    expected = torch.zeros(5, 5)
    expected[1:, :3] = x[0, 0, :4, 2:]  # down 1, left 2
    assert torch.equal(y[0, 0], expected)
    assert torch.equal(y[1], x[1])


def test_random_shifts_bounded_and_seeded():
    g = torch.Generator().manual_seed(0)
    s = random_shifts(1000, 2, g)
    assert s.min() == -2 and s.max() == 2
    assert torch.equal(s, random_shifts(1000, 2, torch.Generator().manual_seed(0)))
