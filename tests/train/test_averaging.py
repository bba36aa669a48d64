"""The weight average a run delivers: its warm-up rule and its update, checked by hand."""

import pytest
import torch

from capsdeploy.train.averaging import effective_decay, weight_average


def test_decay_warms_up_then_holds():
    assert effective_decay(0.999, 0) == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    assert effective_decay(0.999, 90) == pytest.approx(0.91)  # 91 / 100
    assert effective_decay(0.999, 100_000) == 0.999  # the warm-up rule would give 0.99991


def test_update_is_the_hand_computed_average():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    avg = weight_average(model, 0.5)
    avg.update_parameters(model)  # the first update copies: 1.0
    expected = 1.0
    for n, value in enumerate([3.0, 5.0, -2.0], start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        avg.update_parameters(model)
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
        assert avg.module.weight.item() == pytest.approx(expected, rel=1e-5)  # float32
    assert model.weight.item() == -2.0  # training's weights are never touched


def test_zero_disables_and_out_of_range_is_refused():
    model = torch.nn.Linear(1, 1)
    assert weight_average(model, 0) is None
    with pytest.raises(ValueError, match="decay"):
        weight_average(model, 1.0)


def test_warmup_scales_the_rate_for_one_step_only():
    from capsdeploy.train.loop import warmed_up

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    seen = []
    for step in (0, 3, 9, 10, 50):
        with warmed_up(opt, step, warmup_steps=10):
            seen.append(opt.param_groups[0]["lr"])
        assert opt.param_groups[0]["lr"] == 0.5  # the schedule's own rate, untouched
    assert seen == pytest.approx([0.05, 0.2, 0.5, 0.5, 0.5])
    with warmed_up(opt, 0, warmup_steps=0):
        assert opt.param_groups[0]["lr"] == 0.5
