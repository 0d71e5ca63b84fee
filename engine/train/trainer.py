"""Atomic, rotated checkpoints in <run>/checkpoints/step-N for any TRL/transformers trainer.

Every recipe trains with one of TRL's trainers (SFTTrainer, DPOTrainer, KTOTrainer, ...).
`atomic(TrainerClass)` gives that class with the run-folder contract's checkpoint rule: each
checkpoint is written into a staging folder and renamed into place when complete, older ones
are rotated (never the best evaluated one), and a `checkpoint` event is emitted.
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path

from engine.train import checkpoints as ckpt
from engine.train import ranks
from engine.train.trl_compat import patch_trl_for_cpu, quiet_known_noise

patch_trl_for_cpu()
quiet_known_noise()


class AtomicCheckpointMixin:
    """Writes each checkpoint into a staging folder and renames it into place when complete."""

    def __init__(self, *args, run_dir: Path, keep: int, best=lambda: None, **kwargs):
        super().__init__(*args, **kwargs)
        self.run_dir = Path(run_dir)
        self.keep = keep
        self.best_step = best

    def _save_checkpoint(self, model, trial):
        # N ranks write one staging folder (rank 0 the weights and optimizer, each rank its RNG state);
        # rank 0 alone clears it before and renames it after, between barriers.
        root = self.run_dir / "checkpoints"
        staging = root / ".staging"
        main = ranks.is_main()
        if main:
            shutil.rmtree(staging, ignore_errors=True)
        ranks.barrier()
        final_out = self.args.output_dir
        self.args.output_dir = str(staging)
        final = root / f"step-{self.state.global_step}"
        try:
            super()._save_checkpoint(model, trial)
            ranks.barrier()
            if main:
                ckpt.commit_staged(staging / f"checkpoint-{self.state.global_step}", final)
        except BaseException:
            if main:
                shutil.rmtree(staging, ignore_errors=True)  # the previous checkpoints stay untouched
            raise
        finally:
            self.args.output_dir = final_out
        if main:
            shutil.rmtree(staging, ignore_errors=True)
            best = self.best_step()
            ckpt.rotate(self.run_dir, self.keep, root / f"step-{best}" if best is not None else None)
            self.control_checkpoint_event(final)
        ranks.barrier()

    def _load_optimizer_and_scheduler(self, checkpoint):
        if checkpoint and self.args.world_size > 1 and self.args.device.type == "cpu":
            with ranks.cpu_map_location():  # gloo ranks: see ranks.cpu_map_location
                return super()._load_optimizer_and_scheduler(checkpoint)
        return super()._load_optimizer_and_scheduler(checkpoint)

    def control_checkpoint_event(self, path: Path) -> None:
        for cb in self.callback_handler.callbacks:
            if hasattr(cb, "sink"):
                best = self.best_step()
                cb.sink.emit("checkpoint", step=self.state.global_step, path=str(path),
                             best=best is not None and best == self.state.global_step)
                return


@lru_cache(maxsize=None)
def atomic(trainer_cls: type) -> type:
    """`trainer_cls` with atomic checkpoints (one class per trainer, so tests can patch it)."""
    return type(f"Atomic{trainer_cls.__name__}", (AtomicCheckpointMixin, trainer_cls), {})
