"""The training loop: Adam, exponential decay, margin + reconstruction loss, and an
exponential moving average (EMA) of the weights, which is what gets evaluated and delivered.

Shuffling and augmentation are drawn from (seed, epoch) alone, per sample, so
an interrupted run resumed from its state, an uninterrupted run and a torchrun
run split across processes all see the same batches.

Model selection: ``val_fraction`` of the training split is held out (stratified,
seeded) and the epoch with the best validation accuracy is the deliverable. The
test split is evaluated after every epoch and reported, never used to choose.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from ..data import ImageSet, load_split, stratified_split
from ..data.canvas import center
from ..data.datasets import get_spec
from ..data.multimnist import MultiSet, make_pairs
from ..errors import CapsDeployError, UsageError
from ..fileio import write_bytes_atomic
from ..model import CapsNetConfig, CNNConfig, get_arch
from ..model.arch import Arch
from ..model.checkpoint import build_config_doc, default_normalization, save_run
from .augment import normalize_unit
from .averaging import weight_average
from .batches import DigitPairs, SingleDigits, correct
from .distributed import DistInfo, any_rank, barrier, init_distributed, resolve_device, shutdown
from .evaluate import evaluate
from .objective import training_step_loss
from .options import TrainOptions
from .state import load_state, run_exists, save_state


class TrainingInterrupted(CapsDeployError):
    def __init__(self, run_dir):
        super().__init__(
            f"interrupted; state saved. Continue with: capsdeploy train --resume {run_dir}",
            exit_code=130,
        )


@dataclass
class Progress:
    """What survives an interruption, besides model and optimizer."""

    epoch: int = 0  # the epoch in progress (0-based)
    step: int = 0  # batches of that epoch already done
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    best_val_acc: float = -1.0  # of the delivered epoch (unused with val_fraction 0)
    history: list = field(default_factory=list)


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to stop after the current batch."""

    def __init__(self):
        self.raised = False

    @contextlib.contextmanager
    def installed(self):
        def handler(signum, frame):
            self.raised = True

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def log(msg: str, dist_info: DistInfo) -> None:
    if dist_info.is_main:
        tqdm.write(msg, file=sys.stderr)


def train(opts: TrainOptions, resume: bool = False) -> TrainResult:
    """Train per ``opts`` into ``opts.out``; return where it is and the delivered metrics."""
    out = Path(opts.out)
    wants_cuda = opts.device == "cuda" or (opts.device == "auto" and torch.cuda.is_available())
    dist_info = init_distributed("cuda" if wants_cuda else "cpu")
    try:
        return _train(opts, out, resume, dist_info)
    finally:
        shutdown(dist_info)


def resume_options(run_dir: str | Path, epochs: int | None = None) -> TrainOptions:
    state = load_state(run_dir)
    # Runs started before the weight average existed continue without one.
    opts = TrainOptions.from_dict({"ema_decay": 0.0, **state["options"], "out": str(run_dir)})
    if epochs is not None:
        opts.epochs = epochs
    return opts


def _check_options(opts: TrainOptions) -> None:
    if opts.multimnist and opts.pad:
        raise UsageError("--multimnist builds its own 36x36 canvas; drop --pad")
    if opts.pairs_per_digit < 1 or opts.pad < 0:
        raise UsageError("--pairs-per-digit must be >= 1 and --pad >= 0")


def _load_data(opts: TrainOptions):
    """(train, validation or None, test): ImageSets, or with --multimnist, a train ImageSet of
    single digits (paired afresh each epoch) and fixed MultiSets of pairs to evaluate on."""
    spec = get_spec(opts.dataset)
    train_split = opts.train_split or spec.default_train
    test_split = opts.test_split or spec.default_test
    full = load_split(opts.dataset, train_split, opts.data_dir, opts.download, opts.max_train_samples)
    test_set = load_split(opts.dataset, test_split, opts.data_dir, opts.download, opts.max_test_samples)
    if full.shape != test_set.shape:
        raise UsageError(f"train images are {full.shape} but test images are {test_set.shape}")
    if opts.pad:
        # The paper's Section 5.2 protocol: digits on a larger canvas, placed at random by the
        # shift augmentation (which is then up to --pad px), tested centred.
        full, test_set = (_padded(s, opts.pad) for s in (full, test_set))
    train_idx, val_idx = stratified_split(full.labels, opts.val_fraction, opts.seed)
    val_set = full.subset(val_idx, f"{train_split}[val]") if len(val_idx) else None
    train_set = full.subset(train_idx) if len(val_idx) else full
    if opts.multimnist:
        # Fixed pairs to select and report on: the test pairs depend on the split alone (seed 0,
        # as `eval --multimnist` builds them), so runs with different seeds are compared alike.
        test_pairs = make_pairs(test_set, 1, seed=0)
        val_pairs = make_pairs(val_set, 1, seed=opts.seed + 1) if val_set is not None else None
        return train_set, val_pairs, test_pairs
    return train_set, val_set, test_set


def _padded(data: ImageSet, pad: int) -> ImageSet:
    images = center(data.images, data.images.shape[-1] + 2 * pad)
    return ImageSet(images, data.labels, data.class_names, data.name, data.split)


@dataclass
class TrainResult:
    """What `train` returns: where the run is, the delivered epoch's metrics, every epoch's record."""

    out: Path
    delivered: dict
    history: list[dict]

    def to_dict(self) -> dict:
        return {"out": str(self.out), "delivered": self.delivered, "history": self.history}


@dataclass
class _Session:
    """Everything one training run holds between batches; built once by ``_setup``."""

    opts: TrainOptions
    out: Path
    dist_info: DistInfo
    device: torch.device
    arch: Arch
    cfg: CapsNetConfig | CNNConfig
    normalization: dict
    train_set: ImageSet
    val_set: ImageSet | MultiSet | None
    test_set: ImageSet | MultiSet
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    average: AveragedModel | None  # the weight average (None with --ema-decay 0)
    source: SingleDigits | DigitPairs  # batches by index
    sampler: DistributedSampler
    progress: Progress = field(default_factory=Progress)

    @property
    def delivered(self) -> torch.nn.Module:
        """What is evaluated, selected and saved: the weight average where there is one."""
        return self.average.module if self.average is not None else self.model

    def checkpoint_state(self) -> dict:
        return {
            "options": self.opts.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "progress": self.progress.__dict__,
            **({"average": self.average.state_dict()} if self.average is not None else {}),
        }

    def config_doc(self, metrics: dict) -> dict:
        opts = self.opts
        return build_config_doc(
            self.cfg,
            self.train_set.class_names,
            self.normalization,
            dataset={
                "name": self.train_set.name,
                "train_split": self.train_set.split,
                "test_split": opts.test_split or get_spec(opts.dataset).default_test,
                **({"multimnist": {"pairs_per_digit": opts.pairs_per_digit}} if opts.multimnist else {}),
                "train_samples": len(self.train_set),
                "val_fraction": opts.val_fraction,
                "val_samples": len(self.val_set) if self.val_set is not None else 0,
                "test_samples": len(self.test_set),
            },
            training=opts.to_dict() | {"world_size": self.dist_info.world_size},
            metrics=metrics,
        )


def _train(opts: TrainOptions, out: Path, resume: bool, dist_info: DistInfo) -> TrainResult:
    s = _setup(opts, out, resume, dist_info)
    stop = _StopFlag()
    with stop.installed():
        while s.progress.epoch < opts.epochs:
            t0 = time.perf_counter()
            _train_one_epoch(s, stop)
            _end_epoch(s, t0)
    return TrainResult(out, _delivered(out), s.progress.history)


def _model_config(opts: TrainOptions, test_set: ImageSet, num_classes: int):
    """(architecture, config): the defaults, --model-config, and what the data and flags fix."""
    channels, height, width = test_set.images.shape[1:]
    if height != width:
        raise UsageError(f"square images expected, got {height}x{width}")
    arch = get_arch(opts.arch)
    fixed = {"in_channels": channels, "image_size": height, "num_classes": num_classes}
    if arch.capsules:
        fixed |= {"routing_iters": opts.routing_iters, "detach_inner_routing": opts.detach_inner_routing}
    else:
        fixed["routing_iters"] = 0  # no routing to configure
    clash = {k for k in fixed if k in opts.model_overrides and opts.model_overrides[k] != fixed[k]}
    if clash:
        raise UsageError(f"--model-config sets {sorted(clash)}, which come from the data or other flags")
    try:
        defaults = arch.config_cls().to_dict()
        cfg = arch.config_cls.from_dict({**defaults, **opts.model_overrides, **fixed})
    except (TypeError, ValueError) as e:
        raise UsageError(f"bad --model-config for {arch.name}: {e}") from None
    return arch, cfg


def _setup(opts: TrainOptions, out: Path, resume: bool, dist_info: DistInfo) -> _Session:
    """Data, model, optimizer, schedule, weight average and sampler; the resume state if asked."""
    if not resume and run_exists(out) and not opts.overwrite:
        raise UsageError(
            f"{out} already holds a run; continue it with --resume {out}, "
            "replace it with --overwrite, or choose another --out"
        )
    device = resolve_device(opts.device, dist_info)
    _check_options(opts)
    train_set, val_set, test_set = _load_data(opts)
    arch, cfg = _model_config(opts, test_set, len(train_set.class_names))

    torch.manual_seed(opts.seed)
    model = arch.module_cls(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=opts.lr_decay)
    # The average is a copy updated after every optimizer step; training never reads it.
    average = weight_average(model, opts.ema_decay)
    progress = Progress()
    if resume:
        state = load_state(out)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError:
            raise CapsDeployError(
                f"{out}: the resume state does not fit the model built from its options"
            ) from None
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        progress = Progress(**state["progress"])
        if average is not None:
            average.load_state_dict(state["average"])
        log(f"resuming {out} at epoch {progress.epoch + 1}, batch {progress.step}", dist_info)

    amp_dtype = _amp_dtype(opts, device)
    source: SingleDigits | DigitPairs
    if opts.multimnist:
        source = DigitPairs(train_set, opts.pairs_per_digit)
    else:
        source = SingleDigits(train_set, opts.pad or opts.max_shift)
    s = _Session(
        opts=opts,
        out=out,
        dist_info=dist_info,
        device=device,
        arch=arch,
        cfg=cfg,
        normalization=default_normalization(test_set.images.shape[1]),
        train_set=train_set,
        val_set=val_set,
        test_set=test_set,
        model=model,
        net=DistributedDataParallel(model) if dist_info.enabled else model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16),
        amp_dtype=amp_dtype,
        average=average,
        source=source,
        sampler=DistributedSampler(
            range(len(source)),  # type: ignore[arg-type]  # it reads only len() of its dataset
            num_replicas=dist_info.world_size,
            rank=dist_info.rank,
            shuffle=True,
            seed=opts.seed,
        ),
        progress=progress,
    )
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            save_state(out, s.checkpoint_state())
    return s


def _train_one_epoch(s: _Session, stop: _StopFlag) -> None:
    """The epoch in progress, from the batch it stopped at; saves and raises on a stop request."""
    opts, progress = s.opts, s.progress
    epoch = progress.epoch
    s.sampler.set_epoch(epoch)
    order = torch.tensor(list(s.sampler))
    s.source.start_epoch(opts.seed, epoch)
    batches = order.split(opts.batch_size)
    s.net.train()
    bar = tqdm(
        total=len(batches),
        initial=progress.step,
        desc=f"epoch {epoch + 1}/{opts.epochs}",
        disable=None if s.dist_info.is_main else True,
        leave=False,
    )
    for idx in batches[progress.step :]:
        image, y, target = (t.to(s.device) for t in s.source.batch(idx))
        with torch.autocast(s.device.type, dtype=s.amp_dtype, enabled=s.amp_dtype is not None):
            x = normalize_unit(image, s.normalization)
            loss, scores = training_step_loss(s.net, s.arch.capsules, x, y, target, opts.recon_scale)
        s.optimizer.zero_grad(set_to_none=True)
        s.scaler.scale(loss).backward()
        with warmed_up(s.optimizer, epoch * len(batches) + progress.step, opts.warmup_steps):
            s.scaler.step(s.optimizer)
        s.scaler.update()
        if s.average is not None:
            s.average.update_parameters(s.model)
        progress.step += 1
        progress.loss_sum += loss.item() * len(idx)
        progress.correct += int(correct(scores, y).sum())
        progress.seen += len(idx)
        bar.update(1)
        bar.set_postfix(
            loss=f"{progress.loss_sum / progress.seen:.4f}",
            acc=f"{progress.correct / progress.seen:.4f}",
        )
        # Every rank must stop after the same batch: a rank that stops alone
        # leaves the others waiting forever in the next gradient all-reduce.
        if any_rank(stop.raised, s.dist_info, s.device):
            bar.close()
            if s.dist_info.is_main:
                save_state(s.out, s.checkpoint_state())
            barrier(s.dist_info)  # nobody exits before the state is on disk
            raise TrainingInterrupted(s.out)
    bar.close()


def _end_epoch(s: _Session, t0: float) -> None:
    """Step the schedule; evaluate, select on validation accuracy, save and log (main rank)."""
    opts, progress, dist_info = s.opts, s.progress, s.dist_info
    train_seconds = time.perf_counter() - t0
    s.scheduler.step()
    record = {
        "epoch": progress.epoch + 1,
        "train_loss": progress.loss_sum / max(progress.seen, 1),
        "train_acc": progress.correct / max(progress.seen, 1),
        "lr": s.optimizer.param_groups[0]["lr"],
        "train_seconds": round(train_seconds, 2),
        "train_samples_per_second": round(progress.seen * dist_info.world_size / train_seconds, 1),
    }
    progress.epoch, progress.step = progress.epoch + 1, 0
    progress.loss_sum, progress.correct, progress.seen = 0.0, 0, 0
    if dist_info.is_main:
        delivered = s.delivered
        if s.val_set is not None:
            val = evaluate(delivered, s.val_set, s.normalization, opts.eval_batch_size, s.device)
            record.update(val_acc=val["accuracy"], val_loss=val["margin_loss"])
        report = evaluate(delivered, s.test_set, s.normalization, opts.eval_batch_size, s.device)
        record.update(test_acc=report["accuracy"], test_loss=report["margin_loss"])
        record["epoch_seconds"] = round(time.perf_counter() - t0, 2)
        progress.history.append(record)
        metrics = {**record, "per_class": report["per_class"]}
        save_run(s.out / "last", delivered, s.config_doc(metrics))
        # Without a validation split there is nothing to select on: the last epoch is it.
        if s.val_set is None or record["val_acc"] > progress.best_val_acc:
            progress.best_val_acc = record.get("val_acc", -1.0)
            save_run(s.out, delivered, s.config_doc(metrics))
        _write_metrics(s.out, progress.history)
        save_state(s.out, s.checkpoint_state())
        val_text = f"val acc {record['val_acc']:.4f}  " if s.val_set is not None else ""
        log(
            f"epoch {record['epoch']}/{opts.epochs}  loss {record['train_loss']:.4f}  "
            f"train acc {record['train_acc']:.4f}  {val_text}test acc {record['test_acc']:.4f}  "
            f"({record['epoch_seconds']:.0f}s)",
            dist_info,
        )
    barrier(dist_info)


def _delivered(out: Path) -> dict:
    """The metrics of the epoch saved at the run directory's root."""
    path = out / "config.json"
    if not path.is_file():  # a non-main rank before any epoch ended
        return {}
    return json.loads(path.read_text()).get("metrics", {})


@contextlib.contextmanager
def warmed_up(optimizer, global_step: int, warmup_steps: int):
    """Scale the learning rate by (step + 1) / warmup_steps for the first warmup_steps steps.

    Applied around the optimizer step and undone after it, so the per-epoch decay schedule (and
    its resume state) never sees the factor. A pure function of the global step, so a resumed
    run warms up exactly as an uninterrupted one.
    """
    factor = min(1.0, (global_step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if factor == 1.0:
        yield
        return
    base = [g["lr"] for g in optimizer.param_groups]
    for g, lr in zip(optimizer.param_groups, base, strict=True):
        g["lr"] = lr * factor
    try:
        yield
    finally:
        for g, lr in zip(optimizer.param_groups, base, strict=True):
            g["lr"] = lr


def _amp_dtype(opts: TrainOptions, device: torch.device):
    if not opts.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _write_metrics(out: Path, history: list) -> None:
    # Rewritten whole from the resume state, so a resumed run never repeats or loses an epoch.
    text = "".join(json.dumps(r) + "\n" for r in history)
    write_bytes_atomic(out / "metrics.jsonl", text.encode())
