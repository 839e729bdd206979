"""Loss logging: running means of the loss terms, shown on the progress bar and sent to dvclive."""

from __future__ import annotations

from typing import Any


class LossLogger:
    """Running means of the loss terms, reported every ``every`` steps (and at the last one) to
    the tqdm ``bar`` and, as ``<prefix>/<term>``, to a dvclive ``Live`` (or None)."""

    def __init__(self, prefix: str, every: int, live: Any, bar: Any):
        self.prefix, self.every, self.live, self.bar = prefix, every, live, bar
        self.sums: dict[str, float] = {}
        self.n = 0
        self.history: list[dict[str, float]] = []

    def add(self, step: int, terms: dict[str, float], last: bool) -> None:
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1
        if (step + 1) % self.every and not last:
            return
        mean = {k: v / self.n for k, v in self.sums.items()}
        self.sums, self.n = {}, 0
        self.history.append({"step": step + 1, **mean})
        self.bar.set_postfix(total=f"{mean['total']:.3g}")
        if self.live is not None:
            for k, v in mean.items():
                self.live.log_metric(f"{self.prefix}/{k}", v)
            self.live.next_step()
