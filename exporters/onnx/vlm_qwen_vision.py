"""Qwen2.5-VL's vision tower as one traceable graph, valid for any image size.

transformers computes the tower's 2-D rotary positions, its window order and the cu_seqlens
of its variable-length attention with Python loops over `grid_thw.tolist()`, which the
TorchScript tracer would freeze to the example image. `QwenVisionGraph` computes the same
three things from one image's `image_grid_thw` [1, 3] with tensor ops, and replaces the
cu_seqlens attention by an equivalent additive mask:

- window blocks: a patch attends within its window (window_size px = window_size / patch /
  merge merged units per side; edge windows are smaller, no padding needed: the window order
  is an argsort of (frame, window row, window col, row, col) of each merged unit);
- full-attention blocks (`fullatt_block_indexes`): a patch attends within its frame.

It reuses the HF modules' weights (patch embedding, blocks, merger, rotary frequencies). The
mask is dense (patches x patches per head): fine for the image sizes a phone sends, about
1.6 GB of scores per layer at 1000x1000 px (5k patches). onnxruntime-genai runs the graph
once per image when `image_grid_thw` is a static [1, 3] input, as exported here.
"""

from __future__ import annotations


def qwen_vision_graph(visual):
    """The traceable module: pixel_values [patches, C*T*P*P], image_grid_thw [1, 3] -> [patches / merge², hidden]."""
    import torch

    class QwenVisionGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = visual
            cfg = visual.config
            self.merge = cfg.spatial_merge_size
            self.unit = self.merge * self.merge
            self.window = cfg.window_size // cfg.spatial_merge_size // cfg.patch_size  # merged units per window side
            self.full_attention = set(cfg.fullatt_block_indexes)
            self.heads = cfg.num_heads

        def forward(self, pixel_values, image_grid_thw):
            m, win, unit = self.merge, self.window, self.unit
            h, w = image_grid_thw[0, 1], image_grid_thw[0, 2]
            rows, cols = h // m, w // m  # the merged grid
            x = self.visual.patch_embed(pixel_values)  # [S, D], patches in the processor's (t, rows, cols, m, m) order
            seq = x.shape[0]

            # each patch's (row, col) in the patch grid, for the 2-D rotary embedding
            q = torch.arange(seq) % (h * w)
            block, r = q // unit, q % unit
            position = torch.stack([(block // cols) * m + r // m, (block % cols) * m + r % m], dim=-1)
            cos, sin = self.visual.rotary_pos_emb(x, position)

            # the window order of the merged units
            u = torch.arange(seq // unit)
            frame, row, col = u // (rows * cols), (u % (rows * cols)) // cols, u % cols
            windows_down, windows_across = (rows + win - 1) // win, (cols + win - 1) // win
            window = (frame * windows_down + row // win) * windows_across + col // win
            order = torch.argsort(window * (win * win) + (row % win) * win + col % win)

            def windowed(v):
                return v.reshape(seq // unit, unit, -1)[order].reshape(seq, -1)

            x, cos, sin = windowed(x), windowed(cos), windowed(sin)
            window_of = window[order].repeat_interleave(unit)
            frame_of = frame[order].repeat_interleave(unit)
            blocked, open_ = torch.tensor(torch.finfo(x.dtype).min, dtype=x.dtype), torch.zeros((), dtype=x.dtype)
            window_mask = torch.where(window_of[:, None] == window_of[None, :], open_, blocked)
            frame_mask = torch.where(frame_of[:, None] == frame_of[None, :], open_, blocked)
            for i, blk in enumerate(self.visual.blocks):
                mask = frame_mask if i in self.full_attention else window_mask
                x = x + self._attention(blk.attn, blk.norm1(x), cos, sin, mask)
                x = x + blk.mlp(blk.norm2(x))
            return self.visual.merger(x)[torch.argsort(order)]

        def _attention(self, attn, x, cos, sin, mask):
            seq = x.shape[0]
            qkv = attn.qkv(x).reshape(seq, 3, self.heads, -1).permute(1, 0, 2, 3)
            q, k, v = qkv[0], qkv[1], qkv[2]  # [S, heads, d]
            cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
            q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [heads, S, d]
            scores = torch.matmul(q, k.transpose(1, 2)) * attn.scaling + mask
            out = torch.matmul(torch.softmax(scores, dim=-1), v)
            return attn.proj(out.transpose(0, 1).reshape(seq, -1))

    return QwenVisionGraph().eval()


def _rotate_half(x):
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
