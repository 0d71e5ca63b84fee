"""A reward-model run (stage=rm) as a reward: each prompt + answer scored with the run's own tokenizer.

The answer is rendered exactly as the reward model was trained on it (engine/data/pairs.py: the
prompt turns and the answer as the assistant turn in the RM's chat template), so its scores mean
what they meant in training. The RM loads once, in fp32 on the policy's device, and never trains.
"""

from __future__ import annotations

from engine.rewards.builtin import completion_text


class RewardModelReward:
    """Callable reward: the score head's output for every (prompt, completion)."""

    def __init__(self, run: str, name: str, batch_size: int = 8):
        from engine.config import load_config
        from engine.data.pairs import PairEncoder
        from engine.train.run_models import load_reward_model

        self.__name__ = name
        self.run = run
        cfg = load_config(f"{run}/config.yaml")
        self.model, self.tokenizer = load_reward_model(run)
        self.encoder = PairEncoder(self.tokenizer, cfg.sequence.max_len, cfg.sequence.max_prompt_len)
        self.batch_size = batch_size

    def _sequence(self, prompt, completion) -> list:
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
        prompt_ids, answer_ids = self.encoder.split(messages, completion_text(completion))
        return (prompt_ids + answer_ids)[-self.encoder.max_len:]

    def __call__(self, prompts, completions, **kwargs) -> list:
        import torch

        seqs = [self._sequence(p, c) for p, c in zip(prompts, completions)]
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        out = []
        for i in range(0, len(seqs), self.batch_size):
            chunk = seqs[i:i + self.batch_size]
            width = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros(len(chunk), width, dtype=torch.long)
            for j, s in enumerate(chunk):
                ids[j, :len(s)] = torch.tensor(s)
                mask[j, :len(s)] = 1
            with torch.no_grad():
                out += self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, 0].float().tolist()
        return out
