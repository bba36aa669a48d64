"""The paper's baseline CNN: its parameter count and its contract with the rest of the tool."""

import pytest
import torch

from capsdeploy.model import BaselineCNN, CNNConfig, count_parameters


def test_parameter_count_is_the_papers():
    # Sabour et al. 2017, Section 5: "35.4M parameters" for the MNIST baseline.
    n = count_parameters(BaselineCNN())
    assert n == 35_445_522 and round(n / 1e6, 1) == 35.4
    # By hand: three 'same' 5x5 convolutions, then 128*28*28 -> 328 -> 192 -> 10.
    convs = (25 * 1 * 256 + 256) + (25 * 256 * 256 + 256) + (25 * 256 * 128 + 128)
    dense = (128 * 28 * 28 * 328 + 328) + (328 * 192 + 192) + (192 * 10 + 10)
    assert n == convs + dense


def test_outputs_are_probabilities_and_logits():
    torch.manual_seed(0)
    model = BaselineCNN(CNNConfig(conv_channels=(8, 8, 4), hidden=(16, 8))).eval()
    scores, logits = model(torch.rand(3, 1, 28, 28))
    assert scores.shape == logits.shape == (3, 10)
    torch.testing.assert_close(scores.sum(1), torch.ones(3))
    torch.testing.assert_close(scores, torch.softmax(logits, 1))
    with pytest.raises(ValueError, match="no decoder"):
        model(torch.rand(1, 1, 28, 28), reconstruct=True)


def test_dropout_only_while_training():
    torch.manual_seed(0)
    model = BaselineCNN(CNNConfig(conv_channels=(8, 8, 4), hidden=(16, 8)))
    x = torch.rand(2, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x)[1], model(x)[1])
    model.train()
    assert not torch.equal(model(x)[1], model(x)[1])
