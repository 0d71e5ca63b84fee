"""Make TRL's fused LM-head loss work on machines without Triton (CPU-only torch).

TRL 1.15's SFTTrainer always computes the loss through a "fused LM head": the
output projection runs only on positions that carry a label, never building the
full [tokens, vocab] logits. Its kernel needs Triton, which CPU builds of torch
do not ship, so on a CPU TRL finds `_ChunkedLogProbFunction = None` and fails.
`TorchLogProb` is the same computation in plain torch (autograd does the
backward). It keeps TRL's best trick on CPU: for chat data only ~25% of the
tokens are answers, so the 49k-wide projection shrinks by ~4x.
"""

from __future__ import annotations

OUTPUT_ORDER = ("entropy", "log_sum_sq_probs", "mean_logits", "is_top1")


class TorchLogProb:
    """Drop-in for trl.kernels.ChunkedLogProbFunction (same `apply` signature and outputs)."""

    @staticmethod
    def apply(hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping=None,
              logit_scale=1.0, outputs=OUTPUT_ORDER):
        import torch

        logits = hidden @ weight.to(hidden.dtype).t()
        if bias is not None:
            logits = logits + bias.to(logits.dtype)
        logits = logits.float()
        # each of these is a full pass over [answer tokens, vocab] (49k wide): skipped when it is the identity
        if logit_scale != 1.0:
            logits = logits * logit_scale
        if final_logit_softcapping is not None:
            logits = final_logit_softcapping * torch.tanh(logits / final_logit_softcapping)
        if temperature != 1.0:
            logits = logits / temperature
        logz = torch.logsumexp(logits, dim=-1)
        log_probs = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logz
        extra = {}
        with torch.no_grad():  # metrics only
            if "entropy" in outputs or "log_sum_sq_probs" in outputs:
                lp = logits - logz.unsqueeze(-1)
                if "entropy" in outputs:
                    extra["entropy"] = -(lp.exp() * lp).sum(-1)
                if "log_sum_sq_probs" in outputs:
                    extra["log_sum_sq_probs"] = torch.logsumexp(2 * lp, dim=-1)
            if "mean_logits" in outputs:
                extra["mean_logits"] = logits.mean(-1)
            if "is_top1" in outputs:
                extra["is_top1"] = logits.argmax(-1) == targets  # bool, like the Triton kernel (DPO's metrics AND it)
        return (log_probs,) + tuple(extra.get(name) if name in outputs else None for name in OUTPUT_ORDER)


def patch_trl_for_cpu() -> None:
    """Install the torch fallback where TRL could not import its Triton kernel."""
    import trl.trainer.utils as tu

    if getattr(tu, "_ChunkedLogProbFunction", "missing") is None:
        tu._ChunkedLogProbFunction = TorchLogProb


def quiet_known_noise() -> None:
    """Silence messages that are wrong for how edgetune runs, so real warnings stand out.

    TRL warns that padding-free batches need FlashAttention; transformers' sdpa/eager
    attention read the per-sample position ids and mask across samples when there is no
    KV cache (tests/engine/test_train.py::test_packing_keeps_samples_apart checks it).
    """
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars; we draw our own progress
    logging.getLogger("trl.trainer.sft_trainer").addFilter(
        lambda record: "Padding-free training is enabled" not in record.getMessage())
