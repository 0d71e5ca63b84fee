"""Add a VLM's vision and embedding graphs to the builder's decoder, and tie the three together.

    build_vlm_parts(model_dir, folder, pipeline)

`folder` holds what the model builder wrote with exclude_embeds=true (model.onnx takes
inputs_embeds). This traces vision.onnx and embedding.onnx from the HF model (vlm_graphs.py),
writes processor_config.json (onnxruntime-extensions' image preprocessing) and turns
genai_config.json into the multimodal pipeline's: model.type, model.vision, model.embedding,
model.image_token_id.
"""

from __future__ import annotations

import json
from pathlib import Path

from exporters.onnx.vlm_pipelines import VlmPipeline, genai_sections, image_processor_settings


def decoder_input_dtype(folder: Path, genai_config: dict):
    """The torch dtype of the decoder's inputs_embeds (fp32, or fp16/bf16 for GPU targets)."""
    import onnx
    import torch

    graph = onnx.load(str(folder / genai_config["model"]["decoder"]["filename"]), load_external_data=False).graph
    elem = next(i.type.tensor_type.elem_type for i in graph.input if i.name == "inputs_embeds")
    return {onnx.TensorProto.FLOAT: torch.float32, onnx.TensorProto.FLOAT16: torch.float16,
            onnx.TensorProto.BFLOAT16: torch.bfloat16}[elem]


def build_vlm_parts(model_dir: Path, folder: Path, pipeline: VlmPipeline, precision: str = "fp32") -> dict:
    """Write vision.onnx, embedding.onnx and processor_config.json into `folder` and tie them in genai_config.json;
    returns how the two graphs store their weights (for verification and export.json).

    `precision` (the export's) picks the vision weights and embedding table storage (vlm_graphs.VISION_AND_TABLE)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from exporters.onnx.vlm_graphs import VISION_AND_TABLE, export_graph, merged_embedding_module, quantize_vision_int8

    model_dir, folder = Path(model_dir), Path(folder)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    genai_path = folder / "genai_config.json"
    genai = json.loads(genai_path.read_text(encoding="utf-8"))
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    image_token = int(model.config.image_token_id)

    module, example, axes = pipeline.vision(model)
    export_graph(module, tuple(example.values()), folder / "vision.onnx",
                 inputs={name: axes.get(name, {}) for name in example}, outputs={"image_features": axes["image_features"]})
    with torch.no_grad():
        features = module(*example.values())
    vision_weights, table = VISION_AND_TABLE[precision]
    if vision_weights == "int8":
        quantize_vision_int8(folder / "vision.onnx")
    ids = torch.tensor([[0] + [image_token] * features.shape[0] + [0]])
    export_graph(merged_embedding_module(model, image_token, decoder_input_dtype(folder, genai), table), (ids, features),
                 folder / "embedding.onnx",
                 inputs={"input_ids": {0: "batch_size", 1: "sequence_length"},
                         "image_features": {0: "num_image_tokens"}},
                 outputs={"inputs_embeds": {0: "batch_size", 1: "sequence_length"}})

    image = image_processor_settings(model_dir)
    (folder / "processor_config.json").write_text(json.dumps(pipeline.processor_config(config, image), indent=2),
                                                  encoding="utf-8")
    model_extras, vision_extras = pipeline.genai_extras(model, model_dir)
    genai["model"].update(type=pipeline.genai_type, image_token_id=image_token, **model_extras,
                          **genai_sections(list(example), vision_extras))
    genai_path.write_text(json.dumps(genai, indent=4), encoding="utf-8")
    return {"pipeline": pipeline.genai_type, "vision_weights": vision_weights, "embedding_table": table}
