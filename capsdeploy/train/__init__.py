"""Training loop, resume state, distributed training and evaluation."""

from .evaluate import classification_report, evaluate, predict
from .loop import TrainResult, resume_options, train
from .options import TrainOptions

__all__ = [
    "TrainOptions",
    "TrainResult",
    "classification_report",
    "evaluate",
    "predict",
    "resume_options",
    "train",
]
