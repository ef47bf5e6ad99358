"""Generator inference benchmark: per-face milliseconds of every FaceEngine mode, batched and not, with output
PSNR against the eager fp32 reference, FLOPs per face and achieved GFLOP/s.

Two generator configurations: the released GFPGAN v1.3/v1.4 one (random weights) and the project's default
model (model/weights/wgfpgan-default.pth if present, else random weights with configs/default.yaml's
generator). Prints a table and writes benchmarks/results/bench_model.json and .md.

    nice -n 10 python benchmarks/bench_model.py            # ~20 min on the shared 2-core CPU
    python benchmarks/bench_model.py --configs default --threads 2 --repeats 2   # quicker

Each configuration runs with 2 threads (both cores: wall-clock ms/face) and with 1 thread, where the CPU time
of the one compute thread is also recorded: on a machine shared with other jobs that figure is the reliable
one (wall-clock includes waiting for the CPU). Timings are minima over the repeats, taken round-robin over
the modes so that bursts of outside load hit every mode alike; the load average is recorded next to them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Before torch loads OpenMP: idle threads sleep rather than spin. On this shared 2-core machine, spinning
# makes a 2-thread forward 10-40x slower whenever another process holds a core.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.checkpoint import DEFAULT_MODEL_PATH, checkpoint_id, load_generator  # noqa: E402
from model.gfpgan_arch import V14_CONFIG, GFPGANv1Clean  # noqa: E402
from model.inference import FaceEngine, resolve_mode  # noqa: E402

MODES = ("eager", "channels_last", "bf16", "onnx")
PSNR_FLOOR = 35.0


@dataclass
class Row:
    config: str
    mode: str  # as requested
    resolved: str  # as run
    threads: int
    batch: int
    ms_per_face: float  # wall clock
    ms_per_face_median: float
    cpu_ms_per_face: float | None  # CPU time of the compute thread (1-thread runs only)
    psnr_db: float
    speedup: float  # vs eager, batch 1, same threads (CPU time when measured, else wall clock)
    gflops_per_s: float  # per face, from the same figure as the speed-up


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def default_generator() -> tuple[str, GFPGANv1Clean]:
    if DEFAULT_MODEL_PATH.is_file():
        return f"default ({checkpoint_id(DEFAULT_MODEL_PATH)})", load_generator(DEFAULT_MODEL_PATH)
    config = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())["generator"]
    torch.manual_seed(0)
    return "default config, random weights", GFPGANv1Clean(**config).eval()


def flops_per_face(net: GFPGANv1Clean) -> int:
    """Multiply-adds x 2 of the convolutions and matrix products (elementwise ops are not counted)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(torch.zeros(1, 3, net.out_size, net.out_size), return_rgb=False, randomize_noise=False)
    return counter.get_total_flops()


def bench_config(name: str, net: GFPGANv1Clean, batches: list[int], warmup: int, repeats: int) -> tuple[list[Row], int]:
    """Every (mode, batch) engine is built first, then timed round-robin, so that a burst of load from other
    processes on the shared machine hits all modes alike rather than whichever ran at that moment."""
    flops = flops_per_face(net)
    size = net.out_size
    faces = np.random.default_rng(0).integers(0, 256, (max(batches), size, size, 3), dtype=np.uint8)
    engines = {
        mode: FaceEngine.from_generator(copy.deepcopy(net), name, mode=mode, batch_size=max(batches))
        for mode in (*MODES, "auto")
    }
    cases = [(mode, batch) for mode in engines for batch in batches]
    threads = torch.get_num_threads()
    wall: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    cpu: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    outputs: dict[tuple[str, int], np.ndarray] = {}
    for round_ in range(warmup + repeats):
        for mode, batch in cases:
            start, start_cpu = time.perf_counter(), time.thread_time()
            outputs[mode, batch] = engines[mode].restore(faces[:batch])
            if round_ >= warmup:
                wall[mode, batch].append((time.perf_counter() - start) / batch * 1e3)
                cpu[mode, batch].append((time.thread_time() - start_cpu) / batch * 1e3)
        print(f"  {name}, {threads} threads: round {round_ + 1}/{warmup + repeats}", file=sys.stderr, flush=True)

    def figure(case: tuple[str, int]) -> float:
        return min(cpu[case]) if threads == 1 else min(wall[case])

    reference = outputs["eager", max(batches)]
    rows = []
    for mode, batch in cases:
        row = Row(
            config=name,
            mode=mode,
            resolved=engines[mode].mode,
            threads=threads,
            batch=batch,
            ms_per_face=round(min(wall[mode, batch]), 1),
            ms_per_face_median=round(float(np.median(wall[mode, batch])), 1),
            cpu_ms_per_face=round(min(cpu[mode, batch]), 1) if threads == 1 else None,
            psnr_db=round(psnr(outputs[mode, batch], reference[:batch]), 2),
            speedup=round(figure(("eager", 1)) / figure((mode, batch)), 2),
            gflops_per_s=round(flops / figure((mode, batch)) / 1e6, 1),
        )
        rows.append(row)
        print(format_row(row), flush=True)
    return rows, flops


HEADER = (
    "| config | mode | runs as | threads | batch | wall ms/face (min) | wall ms/face (median) | CPU ms/face | "
    "PSNR vs eager (dB) | speed-up | GFLOP/s |"
)


def format_row(row: Row) -> str:
    cpu = f"{row.cpu_ms_per_face:.1f}" if row.cpu_ms_per_face is not None else "-"
    return (
        f"| {row.config} | {row.mode} | {row.resolved} | {row.threads} | {row.batch} | {row.ms_per_face:.1f} | "
        f"{row.ms_per_face_median:.1f} | {cpu} | {row.psnr_db:.2f} | {row.speedup:.2f}x | {row.gflops_per_s:.1f} |"
    )


def environment() -> dict[str, object]:
    import onnxruntime

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "auto_resolves_to": resolve_mode("auto", torch.device("cpu")),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "load_average_start": [round(v, 1) for v in os.getloadavg()],
    }


def write_results(out_dir: Path, env: dict, flops: dict[str, int], rows: list[Row]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"environment": env, "flops_per_face": flops, "rows": [asdict(r) for r in rows]}
    (out_dir / "bench_model.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Generator inference benchmark (benchmarks/bench_model.py)",
        "",
        f"CPU: {env['cpu']}, {env['cores']} cores, torch {env['torch']}, "
        f"onnxruntime {env['onnxruntime']}, OMP_WAIT_POLICY={env['omp_wait_policy']}. "
        f"`auto` runs as `{env['auto_resolves_to']}` here. Load average "
        f"{env['load_average_start']} at start, {env['load_average_end']} at end (shared machine).",
        "",
        "FLOPs per face (2 x multiply-adds of convolutions and matrix products): "
        + ", ".join(f"{name}: {f / 1e9:.1f} GFLOP" for name, f in flops.items()),
        "",
        "Speed-up and GFLOP/s: against eager fp32 at batch 1 of the same configuration and thread count, "
        "from the CPU time of the compute thread in 1-thread runs (robust to other jobs on the machine) and "
        "from wall-clock time in 2-thread runs. PSNR: uint8 output against eager fp32 on the same faces "
        f"(floor for a default mode: {PSNR_FLOOR} dB).",
        "",
        HEADER,
        "|---" * (HEADER.count("|") - 1) + "|",
        *[format_row(r) for r in rows],
        "",
    ]
    (out_dir / "bench_model.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="v1.4,default", help="comma list of: v1.4, default")
    parser.add_argument("--batch", type=int, default=4, help="batched variant size (0: batch 1 only)")
    parser.add_argument("--threads", default="2,1", help="comma list of torch/ORT thread counts")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)

    env = environment()
    batches = [1, args.batch] if args.batch > 1 else [1]
    print(HEADER)
    rows: list[Row] = []
    flops: dict[str, int] = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for key in args.configs.split(","):
            if key == "v1.4":
                torch.manual_seed(0)
                name, net = "v1.4 (512, random weights)", GFPGANv1Clean(**V14_CONFIG).eval()
            elif key == "default":
                name, net = default_generator()
            else:
                parser.error(f"unknown config {key!r}")
            config_rows, flops[name] = bench_config(name, net, batches, args.warmup, args.repeats)
            rows += config_rows
    env["load_average_end"] = [round(v, 1) for v in os.getloadavg()]
    write_results(args.out, env, flops, rows)
    print(f"wrote {args.out / 'bench_model.json'} and bench_model.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
