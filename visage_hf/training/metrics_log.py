"""What a training run measures and records: the validation loss per stream group and the training log.

``train_log.jsonl`` under the output folder holds one JSON record per logging step (also sent to accelerate's
trackers); a resumed run truncates the records after its checkpoint's step.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ..models.configuration_visage import VisageConfig
from ..utils.files import atomic_write_text


def stream_groups(config: VisageConfig) -> dict[str, list[int]]:
    """Streams of each validation group: W coarse / fine, spatial (Y, Z, X) coarse / fine."""
    levels = config.num_codebooks
    groups = {"w_coarse": [0], "w_fine": list(range(1, levels))}
    if not config.is_mono:
        spatial = range(levels, config.num_streams)
        groups["spatial_coarse"] = [j for j in spatial if j % levels == 0]
        groups["spatial_fine"] = [j for j in spatial if j % levels != 0]
    return groups


def token_losses(
    logits: torch.Tensor, labels: torch.Tensor, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-stream cross-entropy sums and token counts, ``(batch, streams)`` each."""
    labels = labels.masked_fill(labels == pad_id, -100)
    valid = labels != -100
    losses = F.cross_entropy(
        logits.flatten(0, 2).float(), labels.flatten(), ignore_index=-100, reduction="none"
    ).view(labels.shape)
    return (losses * valid).sum(1), valid.sum(1).float()


@torch.no_grad()
def evaluate(accelerator, model, eval_loader, config: VisageConfig) -> dict[str, float]:
    """Validation loss over the whole split: each stream's token-mean cross-entropy; ``eval/loss`` is their sum
    (the training loss's scale), ``eval/loss_<group>`` the mean over a group's streams (nats per token)."""
    model.eval()
    totals = torch.zeros(config.num_streams, device=accelerator.device)
    counts = torch.zeros(config.num_streams, device=accelerator.device)
    for batch in eval_loader:
        labels = batch.pop("labels")
        logits = model(**batch).logits
        sums, tokens = accelerator.gather_for_metrics(token_losses(logits, labels, config.code_pad_id))
        totals += sums.sum(0)
        counts += tokens.sum(0)
    model.train()
    means = totals / counts.clamp(min=1)
    metrics = {"eval/loss": float(means.sum())}
    for name, streams in stream_groups(config).items():
        metrics[f"eval/loss_{name}"] = float(means[streams].mean())
    return metrics


class MetricsLog:
    """Training metrics: accumulated between logging steps, reduced over processes, written to the trackers and
    (main process) to ``train_log.jsonl``."""

    def __init__(self, accelerator, output_dir: Path, config: VisageConfig):
        self.accelerator = accelerator
        self.path = output_dir / "train_log.jsonl"
        self.groups = stream_groups(config)
        self.losses: list[torch.Tensor] = []
        self.stream_losses: list[torch.Tensor] = []
        self.grad_norm: float | None = None

    def truncate(self, step: int) -> None:
        """Drop records after ``step`` (a resumed run recomputes them)."""
        if not (self.accelerator.is_main_process and self.path.is_file()):
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if record.get("step", 0) <= step:
                kept.append(line)
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def add(self, loss: torch.Tensor, stream_losses: torch.Tensor, grad_norm) -> None:
        self.losses.append(loss)
        self.stream_losses.append(stream_losses)
        if grad_norm is not None:
            self.grad_norm = float(grad_norm)

    def flush(self, step: int, epoch: float, learning_rate: float) -> dict[str, float]:
        loss = self.accelerator.reduce(torch.stack(self.losses).mean(), reduction="mean")
        streams = self.accelerator.reduce(torch.stack(self.stream_losses).mean(0), reduction="mean")
        record = {"train/loss": float(loss), "train/learning_rate": learning_rate, "train/epoch": epoch}
        if self.grad_norm is not None:
            record["train/grad_norm"] = self.grad_norm
        for name, indices in self.groups.items():
            record[f"train/loss_{name}"] = float(streams[indices].mean())
        self.losses, self.stream_losses, self.grad_norm = [], [], None
        self.write(step, record)
        return record

    def write(self, step: int, record: dict[str, float]) -> None:
        self.accelerator.log(record, step=step)
        if self.accelerator.is_main_process and "eval/loss" in record:  # the console, not only the logs
            from tqdm.auto import tqdm

            tqdm.write(f"step {step}: eval loss {record['eval/loss']:.4f}")
        if self.accelerator.is_main_process:
            with open(self.path, "a") as handle:
                handle.write(json.dumps({"step": step, **record}) + "\n")


__all__ = ["MetricsLog", "evaluate", "stream_groups", "token_losses"]
