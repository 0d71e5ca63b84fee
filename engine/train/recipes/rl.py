"""What the online-RL recipes (grpo, rloo) share: prompt data, rewards, sampling settings, events.

    engine train assets/presets/cpu_grpo.yaml            # GRPO on the bundled model, a length reward

The classic RLHF pipeline is SFT -> reward model (stage=rm) -> PPO against that reward with a KL
penalty to the SFT model. GRPO and RLOO are PPO's maintained successors in TRL: the same clipped
policy ratio and KL term, but the advantage of an answer is its reward against the other answers
sampled for the same prompt instead of a learned value model (no critic in memory). The reward is
a reward-model run, Python functions, built-ins, or a weighted sum (engine/rewards).

The policy starts from `model` (an SFT run, as in the preference stages); with LoRA the KL
reference is the policy with its adapter disabled. Sampling uses the tokenizer's chat template with
the generation prompt and its end-of-turn token, as `engine chat` does; on CPU and on GPU it is
transformers' `generate` (TRL's default path).
"""

from __future__ import annotations

from engine.train.recipes.base import BaseRecipe, require_kind

# TRL's log keys -> our `metrics` names (engine/events.py documents them); per-reward keys are added per run
RL_METRICS = {"reward": "reward", "reward_std": "reward_std", "kl": "kl",
              "completions/mean_length": "completion_len", "completions/clipped_ratio": "truncated",
              "clip_ratio/region_mean": "clip_ratio", "entropy": "entropy", "frac_reward_zero_std": "flat_groups"}


class RlRecipe(BaseRecipe):
    """Online RL on prompt-only data: sample, score with `rl.rewards`, update (TRL's GRPO/RLOO trainers)."""

    data_kinds = ("prompt",)
    progress_metric = "reward"
    backends = ("hf",)  # Unsloth's GRPO path patches TRL's trainer itself; not wired here yet

    def setup(self, resume):
        """Build the rewards first: a bad reward file or rm run fails before the policy loads."""
        from engine.rewards import build_rewards, parse_rewards

        self.reward_specs = parse_rewards(self.cfg.rl.rewards)
        self.reward_funcs, self.reward_weights = build_rewards(self.cfg)
        self.metrics = dict(RL_METRICS)
        for spec in self.reward_specs:
            self.metrics[f"rewards/{spec.name}/mean"] = f"reward_{spec.name}"
            self.metrics[f"rewards/{spec.name}/std"] = f"reward_{spec.name}_std"
        super().setup(resume)

    def _resolve_auto(self) -> tuple[int, bool]:
        """The planner's batch, rounded to whole groups: every prompt's rl.num_generations answers in one batch."""
        bs, gc = super()._resolve_auto()
        g = self.cfg.rl.num_generations
        if self.cfg.optim.batch_size == "auto" and (bs * self.cfg.optim.grad_accum) % g:
            bs = g * max(1, bs // g)
        return bs, gc

    def build_data(self):
        from datasets import Dataset

        from engine.data.dataset import load_examples
        from engine.data.prompts import prompt_rows
        from engine.errors import DataError
        from engine.train.data_build import RunData

        d = self.cfg.data
        if not d.path:
            raise DataError("No prompts: set data=<file> with prompt-only records, e.g. "
                            "data=assets/datasets/brief_prompts.jsonl.")
        loaded = load_examples(d.path, d.format, d.columns, d.system_prompt, d.on_error)
        require_kind(loaded, self.stage, self.data_kinds, d.path)
        rows, truncated, dropped = self._fit_prompts(prompt_rows(loaded.examples, d.path))
        if not rows:
            raise DataError(f"{d.path}: every prompt is longer than sequence.max_prompt_len allows "
                            f"({self._prompt_limit()} tokens with the chat template); raise sequence.max_len or "
                            f"sequence.max_prompt_len, or lower rl.max_completion_len.")
        # No eval split: evaluating an RL policy means sampling again; `engine eval` does it after the run.
        return RunData(train=Dataset.from_list(rows), eval=None, kind="prompt", truncated=truncated, dropped=dropped,
                       skipped=len(loaded.skipped), trained_tokens=0)

    def _prompt_limit(self) -> int:
        from engine.data.prompts import rl_prompt_limit

        s = self.cfg.sequence
        return rl_prompt_limit(s.max_prompt_len, s.max_len, self.cfg.rl.max_completion_len)

    def _fit_prompts(self, rows: list) -> tuple[list, int, int]:
        """Prompts cut to sequence.max_prompt_len (start first, as the preference stages do): rows, cut, dropped."""
        from engine.data.prompts import fit_prompt

        limit, out, truncated = self._prompt_limit(), [], 0
        for row in rows:
            fitted = fit_prompt(self.tokenizer, row["prompt"], limit)
            if fitted is not None:
                out.append({**row, "prompt": fitted[0]})
                truncated += fitted[1]
        return out, truncated, len(rows) - len(out)

    def samples_per_epoch(self) -> int:
        return len(self.data.train) * self.cfg.rl.num_generations  # sampled answers, each trained on

    def tokens_counted(self) -> str:
        return "no"  # TRL counts prompt + sampled tokens itself (tokens_per_s); the Trainer's count would warn

    def shares_prefix(self) -> bool:
        return False  # prompts are left-padded for sampling: no common opening to run once

    def trainer_kwargs(self) -> dict:
        return {"reward_funcs": self.reward_funcs}

    def rl_args(self, common: dict) -> dict:
        """Settings both TRL configs take, from `rl.*`."""
        r = self.cfg.rl
        return dict(**common, num_generations=r.num_generations, max_completion_length=r.max_completion_len,
                    temperature=r.temperature, top_p=r.top_p, beta=r.beta, epsilon=r.epsilon,
                    num_iterations=r.num_iterations, reward_weights=list(self.reward_weights),
                    log_completions=False, disable_dropout=True, shuffle_dataset=True,
                    trust_remote_code=self.cfg.model.trust_remote_code)

    def after_trainer(self, trainer) -> None:
        from engine.train.rl_events import CompletionsCallback

        sample_in_compute_dtype(trainer, self.choice)
        if self.cfg.rl.log_completions > 0:
            trainer.add_callback(CompletionsCallback(self.sink, trainer, self.cfg.rl.log_completions))


def sample_in_compute_dtype(trainer, choice) -> None:
    """Run sampling and the no-grad log-prob passes under autocast when the base is 16-bit.

    The trainer's loss runs under the accelerator's autocast, but TRL samples outside it: a bf16 base
    with the fp32 LoRA weights the base recipe keeps would then meet in one matmul and fail."""
    import functools

    import torch

    if choice.dtype_name == "fp32":
        return
    inner = trainer._generate_and_score_completions

    @functools.wraps(inner)
    def generate_and_score(*args, **kwargs):
        with torch.autocast(device_type=choice.device, dtype=choice.dtype):
            return inner(*args, **kwargs)

    trainer._generate_and_score_completions = generate_and_score
