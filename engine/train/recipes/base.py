"""The run-folder contract every recipe shares: one RunConfig in, one run folder out.

    engine train assets/presets/cpu_quickstart.yaml lr=1e-3 --events -

`BaseRecipe` follows torchtune's recipe shape: `setup` (model, data, trainer), `train` (with
OOM recovery and graceful stop), `save` (adapter + tokenizer into the run folder). The loop
itself is a TRL trainer chosen by the recipe; what the base adds is the run-folder contract:
atomic checkpoints, resume and its fingerprint, events, OOM retry, NaN stop, SIGTERM/Ctrl-C
and saving. A recipe subclass (sft.py, dpo.py, ...) says only what differs: its data kinds,
its TRL trainer class and config, the metrics its `step` events carry and its model head.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Optional

from engine.config import save_config, to_dict
from engine.errors import DataError, EdgetuneError
from engine.events import EventSink
from engine.train import checkpoints as ckpt
from engine.train import ranks

OPTIMIZERS = {"adamw_torch": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit", "paged_adamw_8bit": "paged_adamw_8bit"}
# torch's fused AdamW kernel: the same update in one pass (SmolLM2 LoRA on CPU: 14 vs 53 ms a step)
FUSED = {("adamw_torch", "cpu"): "adamw_torch_fused", ("adamw_torch", "cuda"): "adamw_torch_fused"}
FINGERPRINT = "fingerprint.json"


class RunFailed(EdgetuneError):
    """The run stopped with an error event already emitted."""


def fingerprint(cfg) -> dict:
    """What must not change between a run and its resume."""
    from engine.train.data_build import file_fingerprint

    return {"stage": cfg.stage, "model": cfg.model.name_or_path, "method": cfg.method, "data": cfg.data.path,
            "data_sha": file_fingerprint(cfg.data.path) if cfg.data.path and Path(cfg.data.path).exists() else None,
            "max_len": cfg.sequence.max_len, "max_prompt_len": cfg.sequence.max_prompt_len, "lora_r": cfg.lora.r,
            "packing": cfg.sequence.packing, "processes": ranks.world_size(), "stage_settings": stage_settings(cfg)}


DISPLAY_ONLY = {"rl.log_completions"}  # stage settings that change only what is shown, free to change on resume


def stage_settings(cfg) -> dict:
    """The chosen stage's own section(s) (dpo.*, rl.*, ...): a resume with another beta or reward is another run."""
    from dataclasses import asdict

    from engine.config.stages import SECTION_STAGE, section_stages

    chosen = {name: {k: v for k, v in asdict(getattr(cfg, name)).items() if f"{name}.{k}" not in DISPLAY_ONLY}
              for name in sorted(SECTION_STAGE) if cfg.stage in section_stages(name) and hasattr(cfg, name)}
    return json.loads(json.dumps(chosen, default=str))  # as fingerprint.json will read back (tuples -> lists)


def check_resume_compatible(run_dir: Path, cfg) -> None:
    """Refuse a resume whose stage, model, data or method differ from the run's (naming what changed)."""
    path = run_dir / FINGERPRINT
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    old.setdefault("stage", "sft")  # runs from before stages existed were SFT
    old.setdefault("max_prompt_len", "auto")
    old.setdefault("processes", 1)  # runs from before dist.* trained in one process
    new = fingerprint(cfg)
    old.setdefault("stage_settings", new["stage_settings"])  # runs from before it was recorded: not checked
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in new if old.get(k) != new.get(k)]
    if changed:
        raise EdgetuneError(
            f"Cannot resume '{run_dir}': the run changed since its checkpoints were written ({'; '.join(changed)}). "
            f"Resume with the original settings, or start a new run with a different output_dir."
        )


class BaseRecipe:
    """A training stage over the shared run-folder contract. Subclasses set the class attributes
    and implement `build_data`, `trainer_class` and `trainer_config`."""

    stage = ""  # set by @register_recipe
    data_kinds: tuple = ()  # Example kinds this stage trains on
    metrics: dict = {}  # TRL log key -> name in the step event's `metrics`
    progress_metric: Optional[str] = None  # the metric shown next to the loss on the progress bar
    head = "causal-lm"  # or "sequence-classification"; "image-text-to-text" for a vision-language model
    trains_vlms = False  # the recipe trains vision-language models (engine/vision/stages.py); others refuse them
    vision = False  # set when the start model is a vision-language model
    host_embedding_params = 0  # values of the input-embedding table kept in host RAM (engine/train/host_embedding.py)
    backends: tuple = ("hf", "unsloth")  # training backends that can run it

    def __init__(self, cfg, sink: EventSink, progress: bool = False):
        from engine.train.methods import get_method

        self.cfg = cfg
        self.method = get_method(cfg.method)
        self.sink = sink
        self.progress = progress
        self.run_dir = Path(cfg.output_dir)

    # -- hooks a recipe overrides ------------------------------------------------
    def build_data(self):
        """RunData (engine/train/data_build.py) for this stage."""
        raise NotImplementedError

    def trainer_class(self) -> type:
        """The TRL trainer class that runs the loop."""
        raise NotImplementedError

    def trainer_config(self, common: dict):
        """The TRL config object: `common` holds the TrainingArguments every recipe shares."""
        raise NotImplementedError

    def trainer_kwargs(self) -> dict:
        """Extra keyword arguments for the trainer's constructor."""
        return {}

    def after_trainer(self, trainer) -> None:
        """Adjust a freshly built trainer (called after every (re)build)."""

    def shares_prefix(self) -> bool:
        """Whether a padded batch's common opening (system prompt, turn header) may run once for the batch
        (engine/train/shared_prefix.py: exact, checked per architecture). For pairs the batch holds the chosen
        and the rejected rows of every pair, so their shared prompt opening runs once, not twice per pair."""
        return True

    def samples_per_epoch(self) -> int:
        """Training samples in one epoch (sequences, pairs or labelled completions)."""
        return len(self.data.train)

    def tokens_counted(self) -> str:
        """How TrainingArguments.include_num_input_tokens_seen counts tokens ('non_padding' or 'all')."""
        return "non_padding"

    # -- setup -----------------------------------------------------------------
    def setup(self, resume: Optional[str]) -> None:
        """Check resume, pick device/backend, load the model and data, write config.yaml and the fingerprint."""
        from engine.train.backends import choose_backend, get_backend
        from engine.train.device import choose_device

        cfg = self.cfg
        self.resume_from = None
        if resume:
            check_resume_compatible(self.run_dir, cfg)
            self.resume_from = ckpt.resolve_resume(resume, self.run_dir)
        elif ckpt.list_checkpoints(self.run_dir) or (self.run_dir / "adapter").exists():
            raise EdgetuneError(
                f"Run folder '{self.run_dir}' already holds a run. Continue it with --resume latest, or set "
                f"output_dir to a new folder (nothing was overwritten)."
            )
        self.choice = choose_device(cfg.quant.compute_dtype)
        self.backend_name, self.backend_reason = choose_backend(cfg.train.backend, self.choice.device, cfg.method)
        if self.backend_name not in self.backends:
            if cfg.train.backend != "auto":
                from engine.errors import ConfigError

                raise ConfigError(f"stage={self.stage} does not run on train.backend={self.backend_name}; "
                                  f"use train.backend={self.backends[0]} (or auto).")
            self.backend_name, self.backend_reason = self.backends[0], f"auto: stage={self.stage} runs on {self.backends[0]}"
        self.model_dir = self.resolve_start_model()
        check_method_applies(cfg, self.model_dir)
        self.batch_size, self.grad_ckpt = self._resolve_auto()
        backend = get_backend(self.backend_name)
        from transformers import set_seed

        set_seed(cfg.seed)  # LoRA initialisation is random: same seed, same run
        self.model, self.tokenizer = backend.load(cfg, self.model_dir, self.choice, self.grad_ckpt, head=self.head)
        from engine.train import host_embedding

        self.host_embedding_params = host_embedding.install(self.model, cfg, self.choice.device)  # 0: stays on the device
        self.data = self.build_data()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if ranks.is_main():  # one run folder, whatever the number of processes
            save_config(cfg, self.run_dir / "config.yaml")
            (self.run_dir / FINGERPRINT).write_text(json.dumps(fingerprint(cfg), indent=1))

    def resolve_start_model(self) -> Path:
        """The HF folder training starts from: a model, or an earlier run (its merged result)."""
        from engine.models import resolve_model
        from engine.vision import is_vlm_folder

        path = resolve_model(self.cfg.model.name_or_path, self.cfg.model.revision,
                             trust_remote_code=self.cfg.model.trust_remote_code).path
        if is_vlm_folder(path):
            from engine.vision.stages import check_stage_takes_vlm

            check_stage_takes_vlm(self.stage, type(self), self.cfg.model.name_or_path)
            self.vision, self.head = True, "image-text-to-text"
        return path

    def _resolve_auto(self) -> tuple[int, bool]:
        """Resolve 'auto' batch size / gradient checkpointing with the memory planner (a resumed run keeps the
        micro-batch its plan event recorded: free memory differs from one start to the next, the run must not)."""
        bs, gc = self._planned_auto()
        if self.resume_from and self.cfg.optim.batch_size == "auto":
            from engine.events import read_events

            plans = [e for e in read_events(self.run_dir / "events.jsonl") if e["type"] == "plan"]
            bs = int(plans[-1].get("batch_size") or bs) if plans else bs
        return bs, gc

    def _planned_auto(self) -> tuple[int, bool]:
        from engine.plan import plan_memory, resolve_auto

        memory_gb = None
        if self.choice.device == "cuda":
            import torch

            memory_gb = torch.cuda.get_device_properties(0).total_memory / 2**30
        try:
            bs, gc = resolve_auto(self.cfg, self.choice.device, memory_gb)
            self.plan = plan_memory(self.cfg, self.choice.device, memory_gb)
        except EdgetuneError:  # a model whose shape the planner cannot find: no estimate, still trainable
            bs = 4 if self.cfg.optim.batch_size == "auto" else self.cfg.optim.batch_size
            gc = self.cfg.train.gradient_checkpointing is True
            self.plan = None
        return int(bs), bool(gc)

    def common_args(self, batch_size: int, grad_accum: int) -> dict:
        """TrainingArguments shared by every recipe (run folder, schedule, precision, logging)."""
        cfg, o, t = self.cfg, self.cfg.optim, self.cfg.train
        has_eval = self.data.eval is not None
        return dict(
            output_dir=str(self.run_dir / "checkpoints"),
            per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size,
            gradient_accumulation_steps=grad_accum, learning_rate=o.lr, weight_decay=o.weight_decay,
            num_train_epochs=o.epochs, max_steps=o.max_steps if o.max_steps > 0 else -1,
            lr_scheduler_type=o.scheduler if o.scheduler != "constant" else "constant_with_warmup",
            warmup_steps=o.warmup_ratio, max_grad_norm=o.max_grad_norm or None,
            optim=FUSED.get((o.optimizer, self.choice.device), OPTIMIZERS[o.optimizer]), logging_steps=t.logging_steps,
            save_strategy="steps" if t.save_steps > 0 else "epoch", save_steps=t.save_steps or 500, save_total_limit=None,
            eval_strategy=("steps" if t.eval_steps > 0 else "epoch") if has_eval else "no", eval_steps=t.eval_steps or None,
            seed=cfg.seed, data_seed=cfg.seed, bf16=self.choice.dtype_name == "bf16",
            fp16=self.choice.dtype_name == "fp16", use_cpu=self.choice.device == "cpu",
            gradient_checkpointing=False,  # already applied by the backend, non-reentrant
            include_num_input_tokens_seen=self.tokens_counted(), report_to=[], disable_tqdm=True,
            log_level="warning", dataloader_num_workers=0, remove_unused_columns=False, save_only_model=False,
        )

    def _trainer(self, batch_size: int, grad_accum: int):
        from transformers.trainer_callback import PrinterCallback

        from engine.train.callbacks import EarlyStopping, EventsCallback, NanGuard
        from engine.train.trainer import atomic

        has_eval = self.data.eval is not None
        args = self.trainer_config(self.common_args(batch_size, grad_accum))
        self.events_cb = EventsCallback(self.sink, self.choice.device, self.progress, self.metrics, self.progress_metric)
        self.events_cb.samples_per_epoch = self.samples_per_epoch()
        self.nan_guard, self.stopper = NanGuard(), ranks.make_stopper(self.run_dir)
        self.early = EarlyStopping(self.cfg.train.early_stopping_patience)
        callbacks = [self.events_cb, self.nan_guard, self.stopper] + ([self.early] if has_eval else [])
        callbacks += self.method.callbacks(self.model, self.cfg)
        from engine.train.reference_adapter import no_reference_copy

        with no_reference_copy(self.model):  # a stage with a reference uses the policy with its adapter disabled
            trainer = atomic(self.trainer_class())(
                model=self.model, args=args, train_dataset=self.data.train, eval_dataset=self.data.eval,
                processing_class=self.tokenizer, callbacks=callbacks, run_dir=self.run_dir,
                keep=self.cfg.train.keep_checkpoints, best=lambda: self.early.best_step,
                optimizers=(method_optimizer(self.method, self.model, self.cfg, args), None), **self.trainer_kwargs(),
            )
        trainer.remove_callback(PrinterCallback)  # our events replace its raw dict prints
        from engine.train.model_setup import keep_adapters_fp32

        keep_adapters_fp32(trainer.model)  # TRL casts a 4-bit model's trainable weights to bf16; ours stay fp32
        self.after_trainer(trainer)
        if self.shares_prefix() and self.method.prefix_ok:
            from engine.train import shared_prefix

            shared_prefix.install(trainer.model)
        return trainer

    # -- train -----------------------------------------------------------------
    def train(self) -> dict:
        """Run to the end (or a stop), recovering from OOM by halving the micro-batch."""
        from engine.train.model_setup import count_params

        cfg = self.cfg
        batch_size, grad_accum = self.batch_size, cfg.optim.grad_accum
        trainable, total = count_params(self.model)
        try:
            trainer = self._trainer(batch_size, grad_accum)
        except Exception as e:  # TRL refusing a setting: an error event, not a bare traceback
            self.sink.emit("error", kind="config", message=f"{type(e).__name__}: {e}".splitlines()[0][:500],
                           hint="fix the setting named in the message")
            raise RunFailed(f"the trainer refused the run's settings ({type(e).__name__}: {str(e).splitlines()[0][:300]})") from None
        world = ranks.world_size()
        total_steps = trainer.args.max_steps if trainer.args.max_steps > 0 else _steps_for(
            math.ceil(self.samples_per_epoch() / world), batch_size, grad_accum, cfg.optim.epochs)
        self.sink.emit(
            "run_started", run_dir=str(self.run_dir), stage=self.stage, config=to_dict(cfg), backend=self.backend_name,
            backend_reason=self.backend_reason, device=self.choice.device, dtype=self.choice.dtype_name,
            trainable_params=trainable, total_params=total, train_records=self.samples_per_epoch(),
            eval_records=len(self.data.eval) if self.data.eval is not None else 0, total_steps=total_steps,
            resumed_from=str(self.resume_from) if self.resume_from else None,
            processes=world, effective_batch=batch_size * grad_accum * world,
            **({"host_embedding_params": self.host_embedding_params} if self.host_embedding_params else {}),
        )
        self.sink.emit("plan", total_gb=round(self.plan.total_gb, 2) if self.plan else None,
                       batch_size=batch_size, gradient_checkpointing=self.grad_ckpt)
        if self.data.truncated or self.data.dropped or self.data.skipped:
            self.sink.emit("warning", message=f"{self.data.truncated} record(s) truncated to max_len={cfg.sequence.max_len}, "
                           f"{self.data.dropped} dropped, {self.data.skipped} malformed skipped",
                           hint="raise max_len if answers are being cut; `engine data inspect` shows which")
        from engine.train.activation_offload import offload_note

        if note := offload_note(cfg, self.choice.device):  # offload asked for where it moves nothing
            self.sink.emit("warning", message=note, hint="train.gradient_checkpointing=true says the same; offload pays off on a GPU")
        start = time.perf_counter()
        resume = str(self.resume_from) if self.resume_from else None
        self.stopper.install()
        try:
            while True:
                try:
                    trainer.train(resume_from_checkpoint=resume)
                    break
                except Exception as e:
                    if not _is_oom(e) or batch_size == 1 or world > 1:  # N ranks: the launcher retries them all
                        raise
                    step = trainer.state.global_step
                    batch_size, grad_accum = batch_size // 2, grad_accum * 2
                    self.sink.emit("oom", step=step, batch_size=batch_size, grad_accum=grad_accum)
                    _free_memory()
                    latest = ckpt.latest_checkpoint(self.run_dir)
                    resume = str(latest) if latest else None
                    trainer = self._trainer(batch_size, grad_accum)
        except Exception as e:
            _free_memory()
            kind, hint = _classify(e, batch_size, cfg)
            if kind == "internal":  # a bug, not a user error: keep the traceback for the report
                import traceback

                traceback.print_exc()
            self.sink.emit("error", kind=kind, message=f"{type(e).__name__}: {e}".splitlines()[0][:500], hint=hint)
            latest = ckpt.latest_checkpoint(self.run_dir)
            self.sink.emit("run_finished", status="failed", step=trainer.state.global_step,
                           paths={"run_dir": str(self.run_dir), "last_checkpoint": str(latest) if latest else None},
                           metrics={"seconds": round(time.perf_counter() - start, 1)})
            raise RunFailed(f"{hint} ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})") from None
        finally:
            self.stopper.uninstall()
        return self._finish(trainer, start)

    def _finish(self, trainer, start: float) -> dict:
        state = trainer.state
        seconds = time.perf_counter() - start
        losses = [h["loss"] for h in state.log_history if "loss" in h]
        metrics = {"train_loss": losses[-1] if losses else None, "seconds": round(seconds, 1),
                   "steps": state.global_step, "tokens_per_s": round(state.num_input_tokens_seen / max(seconds, 1e-9), 1),
                   "samples_per_s": round(self.events_cb.samples_seen(state) / max(seconds, 1e-9), 3)}
        metrics.update(self.events_cb.last_metrics)
        evals = [h["eval_loss"] for h in state.log_history if "eval_loss" in h]
        if evals:
            metrics["eval_loss"] = evals[-1]
            metrics["best_eval_loss"] = min(evals)
        paths = {"run_dir": str(self.run_dir)}
        if self.nan_guard.bad_step is not None:
            latest = ckpt.latest_checkpoint(self.run_dir)
            self.sink.emit("error", kind="nan", message=f"loss became NaN/inf at step {self.nan_guard.bad_step}",
                           hint=f"lower the learning rate (now {self.cfg.optim.lr:g}) or use compute_dtype=bf16 instead of fp16; "
                                f"the last good checkpoint is {latest}")
            paths["last_checkpoint"] = str(latest) if latest else None
            self.sink.emit("run_finished", status="failed", step=state.global_step, paths=paths, metrics=metrics)
            raise RunFailed(f"loss became NaN/inf at step {self.nan_guard.bad_step}; lower the learning rate. Last good checkpoint: {latest}")
        if self.stopper.requested:
            latest = ckpt.latest_checkpoint(self.run_dir)
            paths["last_checkpoint"] = str(latest) if latest else None
            self.sink.emit("run_finished", status="interrupted", step=state.global_step, paths=paths, metrics=metrics)
            return {"status": "interrupted", "paths": paths, "metrics": metrics}
        best = None
        if self.early.best_step is not None:
            best = self.run_dir / "checkpoints" / f"step-{self.early.best_step}"
            paths["best_checkpoint"] = str(best)
        paths.update(self.save(trainer, best if best is not None and best.is_dir() else None))
        self.sink.emit("run_finished", status="completed", step=state.global_step, paths=paths, metrics=metrics)
        return {"status": "completed", "paths": paths, "metrics": metrics}

    # -- save ------------------------------------------------------------------
    def save(self, trainer, best: Optional[Path]) -> dict:
        """adapter/ (LoRA methods) or final/ (full, freeze), written atomically with the tokenizer."""
        from engine.train.methods import get_method

        method = get_method(self.cfg.method)
        name = "adapter" if method.is_adapter else "final"
        if not ranks.is_main():
            return {}
        final = self.run_dir / name
        tmp = self.run_dir / f".{name}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        if best is not None:
            # The best evaluated checkpoint holds the weights to keep.
            trainer._load_from_checkpoint(str(best))
        if method.saved_as == "module":
            from engine.train.methods.bottleneck_layers import save_bottlenecks

            save_bottlenecks(trainer.model, tmp, str(self.model_dir))
        elif self.cfg.lora.init != "gaussian" and method.saved_as == "peft":
            from engine.train.methods.lora import INITIAL_ADAPTER

            trainer.model.save_pretrained(str(tmp), safe_serialization=True,  # a LoRA for the original base
                                          path_initial_model_for_weight_conversion=str(self.run_dir / INITIAL_ADAPTER))
        else:
            trainer.model.save_pretrained(str(tmp), safe_serialization=True)
        self.tokenizer.save_pretrained(str(tmp))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        return {name: str(final)}


def check_method_applies(cfg, model_dir: Path) -> None:
    """Refuse a method that cannot apply to this model (BitFit without biases, ...) before loading its weights."""
    from engine.train.methods import check_applies, model_facts

    config = model_dir / "config.json"
    facts = None
    if config.is_file():
        try:
            facts = model_facts(json.loads(config.read_text()))
        except EdgetuneError:
            facts = None  # a shape the planner cannot read: the method's attach checks the loaded model instead
    check_applies(cfg, facts)


def method_optimizer(method, model, cfg, args):
    """The method's own optimizer (LoRA+), or None for the trainer's default from `args.optim`."""
    from transformers import Trainer

    if not method.wants_optimizer(cfg):
        return None
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    return method.optimizer(model, cfg, cls, kwargs)


def require_kind(data, stage: str, allowed: tuple, path: str) -> None:
    """Refuse data of a kind this stage cannot train on, naming the stages that can."""
    if data.kind in allowed:
        return
    from engine.train.recipes import stages_for_kind

    fits = stages_for_kind(data.kind)
    raise DataError(f"{path} holds {data.kind} records, which stage={stage} cannot train on (it needs "
                    f"{' or '.join(allowed)} data). Use stage={' or stage='.join(fits) if fits else '?'} for this file, "
                    f"or give stage={stage} a file of the right kind (`engine data inspect FILE` says which stages fit).")


def _steps_for(n: int, batch: int, accum: int, epochs: float) -> int:
    per_epoch = max(1, math.ceil(n / batch) // accum + (1 if math.ceil(n / batch) % accum else 0))
    return int(math.ceil(per_epoch * epochs))


def _is_oom(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "out of memory" in text


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


def _classify(e: BaseException, batch_size: int, cfg) -> tuple[str, str]:
    if getattr(e, "kind", None) and getattr(e, "hint", None):  # an error that says what it is (a failed reward)
        return e.kind, e.hint
    if _is_oom(e):
        return "oom", (f"Out of memory even at batch_size=1. Lower max_len (now {cfg.sequence.max_len}), use method=qlora, "
                       f"train.gradient_checkpointing=true and optim.optimizer=paged_adamw_8bit, or a smaller model.")
    if isinstance(e, OSError) and getattr(e, "errno", None) == 28:
        return "disk", f"Disk full while writing to {cfg.output_dir}; the previous checkpoint is intact. Free space and resume with --resume latest."
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", "Stopped by the user before a checkpoint; resume with --resume latest."
    return "internal", "Unexpected error during training; see the message, and resume with --resume latest once fixed."
