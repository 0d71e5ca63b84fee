"""Length groups: a right-padded batch runs as a few sub-batches, each padded only to its own longest row.

A batch is padded to its longest row; every padding position still costs a full forward and
backward. Preference batches are the worst case: TRL's DPO batch holds each pair's chosen and
rejected answer, and the chosen answer is often a sentence where the rejected one is a paragraph
(bundled brief pairs: 5.6 vs 59.5 answer tokens on a 38-token prompt), so about a quarter of the
batch's positions are padding. In a causal decoder a right-padded row's real positions never see
its padding, so running rows in groups of similar length gives the same hidden states at every
real position. The padding positions come back as zeros (every trainer masks them out of the
loss: label -100, completion mask 0).

`plan(lengths)` picks the grouping: rows sorted by length, cut into at most MAX_GROUPS contiguous
runs minimising padded positions plus a per-call cost, and used only when it saves at least
MIN_SAVING of the batch's positions (one more forward call costs fixed time whatever its size).
"""

from __future__ import annotations

MAX_GROUPS = 3
MIN_SAVING = 0.15  # share of the padded positions a grouping must save to be worth extra forward calls
CALL_COST = 16  # positions one more forward call is worth (fixed per-call time), in the plan's cost


def plan(lengths: list[int], width: int) -> list[list[int]] | None:
    """Row indices per group (shortest group first), or None when one padded batch is as good.

    `lengths` are the rows' real positions to run (after any shared prefix), `width` the padded width.
    """
    rows = len(lengths)
    if rows < 2:
        return None
    order = sorted(range(rows), key=lambda r: lengths[r])
    sorted_len = [lengths[r] for r in order]
    inf = float("inf")
    # best[g][i]: least cost of the first i sorted rows in g groups; cut[g][i]: where the last group starts
    best = [[inf] * (rows + 1) for _ in range(MAX_GROUPS + 1)]
    cut = [[0] * (rows + 1) for _ in range(MAX_GROUPS + 1)]
    best[0][0] = 0
    for g in range(1, MAX_GROUPS + 1):
        for i in range(1, rows + 1):
            for j in range(g - 1, i):  # the last group is sorted rows j..i-1, padded to sorted_len[i-1]
                cost = best[g - 1][j] + (i - j) * sorted_len[i - 1] + CALL_COST
                if cost < best[g][i]:
                    best[g][i], cut[g][i] = cost, j
    groups_n = min(range(1, MAX_GROUPS + 1), key=lambda g: best[g][rows])
    if groups_n == 1:
        return None
    groups, i, g = [], rows, groups_n
    while g > 0:
        j = cut[g][i]
        groups.append(order[j:i])
        i, g = j, g - 1
    groups.reverse()
    padded = sum(len(grp) * max(lengths[r] for r in grp) for grp in groups)
    if padded > (1 - MIN_SAVING) * rows * width:
        return None
    return groups


def right_padded_lengths(attention_mask) -> list[int] | None:
    """Each row's real length when every row is ones then zeros (right padding), else None."""
    import torch

    if attention_mask is None or attention_mask.dim() != 2:
        return None
    lengths = attention_mask.sum(1)
    expected = torch.arange(attention_mask.shape[1], device=attention_mask.device)[None, :] < lengths[:, None]
    if not torch.equal(attention_mask.bool(), expected):
        return None
    return [int(n) for n in lengths]
