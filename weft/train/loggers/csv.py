"""CSV backend: one `step,tag,value` row per logged scalar."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from weft.train.loggers.base import Backend

__all__ = ["CSVBackend"]


class CSVBackend(Backend):
    """Append scalars to `path` as `step,tag,value` rows (long format: new tags need no new
    columns); hyperparameters go to the same file with step -1 and tag `hparam/<name>`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 (kept open across calls)
        self._rows = csv.writer(self._file)
        if new:
            self._rows.writerow(["step", "tag", "value"])

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, value in values.items():
            self._rows.writerow([step, tag, repr(float(value))])

    def log_hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        for name, value in hparams.items():
            self._rows.writerow([-1, f"hparam/{name}", value])

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
