"""Stability figures for docs/ABLATION.md: critic and generator curves of the ablation arms, side by side.

    python benchmarks/ablation_curves.py runs/ablation-logistic runs/ablation-wgan runs/ablation-wgan-gp

Reads each run's log.csv (written by model/train.py), prints a Markdown table of stability statistics
(divergence = a non-finite loss or a critic loss beyond 100x its median magnitude; the spread of the critic
loss over the last half of the run; the validation PSNR trend) and saves docs/img/ablation_curves.png plus
benchmarks/results/ablation_curves.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np

PANELS = ("d_loss", "g_adv", "l1", "val_psnr")


def read_log(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "log.csv").open() as fh:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]


def series(rows: list[dict[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in rows if key in r]
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def stability(rows: list[dict[str, float]]) -> dict[str, float]:
    _, d = series(rows, "d_loss")
    _, val = series(rows, "val_psnr")
    finite = np.isfinite(d)
    scale = float(np.median(np.abs(d[finite]))) if finite.any() else math.nan
    diverged = int((~finite).sum() + (np.abs(d[finite]) > 100 * max(scale, 1e-6)).sum())
    tail = d[len(d) // 2 :]
    return {
        "steps": rows[-1]["step"],
        "minutes": rows[-1]["elapsed_s"] / 60,
        "divergences": diverged,
        "d_loss_last_half_mean": float(np.mean(tail)) if len(tail) else math.nan,
        "d_loss_last_half_std": float(np.std(tail)) if len(tail) else math.nan,
        "val_psnr_first": float(val[0]) if len(val) else math.nan,
        "val_psnr_last": float(val[-1]) if len(val) else math.nan,
    }


def plot(runs: dict[str, list[dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.2))
    for ax, key in zip(axes, PANELS, strict=True):
        for name, rows in runs.items():
            steps, values = series(rows, key)
            ax.plot(steps, values, label=name, lw=1.2)
        ax.set_title(key)
        ax.set_xlabel("generator step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--plot", type=Path, default=Path("docs/img/ablation_curves.png"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/ablation_curves.json"))
    args = parser.parse_args()
    runs = {run.name.removeprefix("ablation-"): read_log(run) for run in args.runs}
    stats = {name: stability(rows) for name, rows in runs.items()}
    keys = list(next(iter(stats.values())))
    print("| arm | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, s in stats.items():
        print(f"| {name} | " + " | ".join(f"{s[k]:.4g}" for k in keys) + " |")
    plot(runs, args.plot)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(stats, indent=2))
    print(f"\nsaved {args.plot} and {args.json}")


if __name__ == "__main__":
    main()
