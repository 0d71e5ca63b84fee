"""`stage=sft`: supervised fine-tuning on chats/instructions, or continued pre-training on raw text.

    engine train assets/presets/cpu_quickstart.yaml

TRL's SFTTrainer runs the loop on records rendered and masked by engine/data (loss on the
answers, or on every token of raw text). What this recipe adds to the base: padding-free
batches where attention is varlen, packing, and the shared-prefix trick on padded batches.
"""

from __future__ import annotations

from engine.train.recipes import register_recipe
from engine.train.recipes.base import BaseRecipe


@register_recipe("sft")
class SftRecipe(BaseRecipe):
    """Supervised fine-tuning (chat/instruction) and continued pre-training (raw text)."""

    data_kinds = ("chat", "text")
    trains_vlms = True  # image + text records (engine/vision/), its processor batches them

    def build_data(self):
        if self.vision:
            from engine.vision.encode import build_vision_data

            return build_vision_data(self.cfg, self.tokenizer)
        from engine.train.data_build import build_run_data
        from engine.vision.data import refuse_images_for_text_model

        refuse_images_for_text_model(self.cfg.data.path, self.cfg.model.name_or_path, self.model_dir)
        return build_run_data(self.cfg, self.tokenizer)

    def trainer_kwargs(self) -> dict:
        if not self.vision:
            return {}
        from engine.vision.collate import VisionCollator

        return {"data_collator": VisionCollator(self.tokenizer)}  # pixels per batch, labels on the answers only

    def trainer_class(self) -> type:
        from trl import SFTTrainer

        return SFTTrainer

    def tokens_counted(self) -> str:
        # trained tokens: padding excluded (a flattened batch has none, and its pad id may be a real token)
        return "all" if self._flatten_batches() else "non_padding"

    def trainer_config(self, common: dict):
        from trl import SFTConfig

        seq = self.cfg.sequence
        if self.vision:  # whole records in padded batches: a packed or cut record would split image tokens from pixels
            return SFTConfig(**common, max_length=None, packing=False, padding_free=False,
                             completion_only_loss=False, assistant_only_loss=False)
        return SFTConfig(
            **common,
            # records are already truncated; with packing, max_length is the bin size
            max_length=seq.max_len if seq.packing else None, packing=seq.packing, packing_strategy="bfd",
            padding_free=self._flatten_batches(), completion_only_loss=False, assistant_only_loss=False,
        )

    def shares_prefix(self) -> bool:
        return not self.vision and not self._flatten_batches()  # a flattened batch has no common opening

    def _flatten_batches(self) -> bool:
        """Padding-free batches (each micro-batch flattened into one sequence) where attention is varlen.

        FlashAttention (and Unsloth's kernels) attend per sample inside a flattened batch at the cost
        of padded batches minus the padding. SDPA and eager attention, which CPUs and most consumer
        setups use, turn the flattened batch into one long sequence with a block-diagonal mask: every
        sample pays attention over the whole micro-batch (measured on SmolLM2, batch 8: attention 3x
        slower than per sample). There, padded batches (padded to the longest in the batch) are faster.
        Batches stay in random order: grouping by length made the quickstart learn worse (held-out
        quiz 8/10 vs 9/10), since samples of one length tend to be about the same thing.
        """
        attn = getattr(self.model.config, "_attn_implementation", "") or ""
        return self.backend_name == "unsloth" or attn.startswith("flash_attention")
