"""TorchLogProb, the plain-torch stand-in for TRL's Triton fused LM head: same loss, gradients and metrics."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("temperature, scale", [(1.0, 1.0), (0.7, 2.0)])
def test_matches_full_logits_cross_entropy(temperature, scale):
    from engine.train.trl_compat import TorchLogProb

    torch.manual_seed(0)
    hidden = torch.randn(6, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (6,))
    log_probs, entropy, log_sum_sq, mean_logits, is_top1 = TorchLogProb.apply(
        hidden, weight, None, targets, temperature, 4, None, scale, ("entropy", "is_top1"))
    ref_logits = (hidden @ weight.t()) * scale / temperature
    ref = -torch.nn.functional.cross_entropy(ref_logits, targets, reduction="none")
    assert torch.allclose(log_probs, ref, atol=1e-5)
    p = ref_logits.softmax(-1)
    assert torch.allclose(entropy, -(p * p.log()).sum(-1), atol=1e-5)
    assert torch.equal(is_top1, (ref_logits.argmax(-1) == targets).float())
    assert log_sum_sq is None and mean_logits is None  # not asked for, not computed
    (g_ours,) = torch.autograd.grad(log_probs.sum(), hidden)
    (g_ref,) = torch.autograd.grad(ref.sum(), hidden)
    assert torch.allclose(g_ours, g_ref, atol=1e-5)
