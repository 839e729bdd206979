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
        point = {"step": step + 1, **self.tags(), **{k: v / self.n for k, v in self.sums.items()}}
        self.sums, self.n = {}, 0
        self.history.append(point)
        self.bar.set_postfix(total=f"{point['total']:.3g}")
        self.send(point)

    def tags(self) -> dict[str, Any]:
        """Labels stored with each point besides its step (none here)."""
        return {}

    def send(self, point: dict[str, Any]) -> None:
        """Log one point to dvclive: each term as ``<prefix>/<term>``, then the next step."""
        if self.live is None:
            return
        for k, v in point.items():
            if k != "step":
                self.live.log_metric(f"{self.prefix}/{k}", v)
        self.live.next_step()
