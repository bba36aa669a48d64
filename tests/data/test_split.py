import numpy as np
import pytest

from capsdeploy.data import stratified_split
from capsdeploy.errors import UsageError


def test_stratified_seeded_disjoint_and_complete():
    labels = np.repeat(np.arange(10), [100, 50, 30, 200, 10, 60, 70, 80, 90, 110])
    np.random.default_rng(5).shuffle(labels)
    train, val = stratified_split(labels, 0.1, seed=0)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(labels)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    for c, n in enumerate([100, 50, 30, 200, 10, 60, 70, 80, 90, 110]):
        assert (labels[val] == c).sum() == round(0.1 * n)  # every class in proportion
    again, _ = stratified_split(labels, 0.1, seed=0)
    other, _ = stratified_split(labels, 0.1, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_zero_holds_out_nothing_and_bad_fractions_are_refused():
    labels = np.arange(20) % 2
    train, val = stratified_split(labels, 0.0, seed=0)
    assert len(val) == 0 and np.array_equal(train, np.arange(20))
    for bad in (-0.1, 1.0):
        with pytest.raises(UsageError, match="val-fraction"):
            stratified_split(labels, bad, seed=0)
    with pytest.raises(UsageError, match="empty"):
        stratified_split(np.arange(3), 0.1, seed=0)  # 3 classes of one image: nothing to hold out
