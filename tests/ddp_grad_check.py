"""Run by tests/test_train.py under `torchrun --nproc_per_node 2`: a few data-parallel steps, then every rank
writes the fingerprint of its averaged gradients (and of its weights) so the test can compare ranks."""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist

from model.train import TrainConfig, Trainer, gradient_fingerprint, setup_distributed


def main(config_path: str, out_path: str) -> None:
    torch.set_num_threads(1)
    cfg = TrainConfig.from_yaml(config_path)
    trainer = Trainer(cfg, setup_distributed("cpu"))
    for _ in range(2):
        trainer.train_step()
    weights = torch.cat([p.detach().flatten() for p in trainer.generator.parameters()])
    result = {
        "rank": trainer.dist.rank,
        "world": trainer.dist.world,
        "generator_grad": gradient_fingerprint(trainer.generator).tolist(),
        "critic_grad": gradient_fingerprint(trainer.critic).tolist(),
        "weights": [weights.sum().item(), weights.norm().item()],
        "batches": trainer.batches_consumed,
    }
    with open(f"{out_path}.{trainer.dist.rank}", "w") as fh:
        json.dump(result, fh)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
