"""GGUF export of a vision-language model: the text LM through our converter + an mmproj GGUF.

    engine export gguf runs/shapes --quant q8_0      # model-q8_0.gguf + mmproj-f16.gguf (+ verify.json)
    llama-mtmd-cli -m model-q8_0.gguf --mmproj mmproj-f16.gguf --image photo.png -p "What colour?"

The decoder is staged as the plain causal LM it is (Idefics3's `model.text_model.*` renamed to
`model.*`, its text_config as config.json, the VLM's tokenizer with the image tokens) and goes
through GgufExporter unchanged: the same token-id and logits verification as any text model.
The vision encoder + projector become `mmproj-f16.gguf` (exporters/gguf/mmproj.py), verified by
loading both files with llama.cpp's multimodal library (libmtmd, through llama-cpp-python)
and comparing the image embeddings it computes for a sample picture with transformers', then the
next-token logits of a question about that picture (vision_prompt_check.py). An unsupported
family or decoder architecture is refused before anything is written.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from engine.errors import EdgetuneError

STAGE = ".vlm-language-model.stage"
COPY = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
        "chat_template.json", "generation_config.json", "tokenizer.model")
# An embedding match this close survives F16 weights; a wrong tensor layout gives NMSE near 1.
MAX_EMBED_NMSE = 1e-3


def check_vlm_exportable(model_dir: Path) -> str:
    """The decoder's HF architecture, or EdgetuneError naming what is unsupported (before any work)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from engine.vision import read_config
    from exporters.gguf.mmproj import check_mmproj_supported
    from exporters.gguf.registry import supported_architectures

    check_mmproj_supported(model_dir)
    text = read_config(model_dir).get("text_config") or {}
    arch = (text.get("architectures") or [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(text.get("model_type", ""), "?")])[0]
    if arch not in supported_architectures():
        raise EdgetuneError(f"This VLM's language model is a {arch}, which edgetune's GGUF converter does not cover yet "
                            f"(supported: {', '.join(supported_architectures())}). Nothing was written.")
    return arch


def refuse_run_before_merge(source) -> None:
    """For a run folder (which model_dir_for merges on demand): check_mmproj_supported's refusal of its base VLM
    before that merge, so a family edgetune cannot export writes nothing. Other sources: nothing to do here."""
    from engine.config import load_config
    from engine.models import resolve_model
    from engine.runs import is_run_dir
    from engine.vision import is_vlm_folder
    from exporters.gguf.mmproj import check_mmproj_supported

    run = Path(source)
    # a VLM run saves its processor with the adapter; a text run (or one without an adapter) is left to the usual path
    if not is_run_dir(run) or not (run / "adapter" / "processor_config.json").is_file():
        return
    try:
        cfg = load_config(run / "config.yaml")
        base = resolve_model(cfg.model.name_or_path, cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code).path
    except EdgetuneError:  # an unreadable config or a base not at hand: model_dir_for reports it as before
        return
    if is_vlm_folder(base):
        check_mmproj_supported(base)


def stage_language_model(model_dir: Path, stage: Path) -> Path:
    """Write the VLM's decoder as a causal-LM folder in `stage`; returns it."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from engine.vision import read_config
    from engine.vision.families import family_for

    config = read_config(model_dir)
    family = family_for(config)
    arch = check_vlm_exportable(model_dir)
    prefix = family.language_model + "."
    tensors = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as f:
            for saved in f.keys():
                key = family.module_key(saved)
                if key.startswith(prefix):
                    tensors["model." + key[len(prefix):]] = f.get_tensor(saved).contiguous()
                elif key == "lm_head.weight":
                    tensors[key] = f.get_tensor(saved).contiguous()
    text = dict(config["text_config"])
    text["architectures"] = [arch]
    text["tie_word_embeddings"] = bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False)))
    if text["tie_word_embeddings"]:
        tensors.pop("lm_head.weight", None)
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    save_file(tensors, str(stage / "model.safetensors"), metadata={"format": "pt"})
    (stage / "config.json").write_text(json.dumps(text, indent=1))
    for name in COPY:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, stage / name)
    return stage


def export_vlm(model_dir: Path, out_dir: Path, quants: list, progress=None, metadata=None, pre_tokenizer=None,
               name=None, verify: bool = True, modelfile: bool = True, max_kl=None, min_top1=None):
    """model-<quant>.gguf files of the decoder + mmproj-f16.gguf; returns the GgufExporter's ExportResult."""
    from exporters.gguf.exporter import ExportedFile, GgufExporter
    from exporters.gguf.mmproj import mmproj_file_name, write_mmproj

    check_vlm_exportable(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = stage_language_model(model_dir, out_dir / STAGE)
    try:
        exporter = GgufExporter(stage, out_dir, progress, metadata, pre_tokenizer, name)
        kwargs = {k: v for k, v in (("max_kl", max_kl), ("min_top1", min_top1)) if v is not None}
        result = exporter.export(quants, verify=verify, modelfile=modelfile, **kwargs)
        exporter.close()
        start = time.perf_counter()
        mmproj = write_mmproj(model_dir, out_dir / mmproj_file_name("f16"))
        result.files.append(ExportedFile(mmproj, "mmproj-f16", mmproj.stat().st_size, time.perf_counter() - start))
        if verify:
            lm = next((f.path for f in result.files if f.path.name.startswith("model-")), None)
            report = verify_mmproj(model_dir, lm, mmproj)
            result.reports.append(report)
            _add_to_verify_json(out_dir, report)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return result


def _add_to_verify_json(out_dir: Path, report) -> None:
    from exporters.gguf.staging import VERIFY_JSON

    path = out_dir / VERIFY_JSON
    data = json.loads(path.read_text()) if path.is_file() else {}
    files = data.setdefault("files", {}) if isinstance(data, dict) else {}
    files[report.file] = report.to_dict()
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.rename(path)


def transformers_image_embeddings(model_dir: Path, image):
    """(tokens, hidden) image embeddings of transformers' model for one picture (fp32)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from engine.vision.processor import load_processor

    processor = load_processor(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    enc = processor(text=[processor.image_token], images=[[image]], return_tensors="pt")
    with torch.no_grad():
        out = model.model.get_image_features(pixel_values=enc["pixel_values"], pixel_attention_mask=enc.get("pixel_attention_mask"))
    feats = getattr(out, "pooler_output", out)
    if isinstance(feats, (list, tuple)):
        feats = feats[0]
    return feats.reshape(-1, feats.shape[-1]).float().numpy()


def llama_cpp_image_embeddings(lm_gguf: Path, mmproj: Path, image):
    """(tokens, hidden) image embeddings llama.cpp's libmtmd computes with the mmproj file."""
    import ctypes

    import llama_cpp
    import numpy as np
    from llama_cpp import mtmd_cpp as mtmd

    llm = llama_cpp.Llama(model_path=str(lm_gguf), n_ctx=512, verbose=False)
    params = mtmd.mtmd_context_params_default()
    params.use_gpu, params.n_threads, params.print_timings, params.warmup = False, 2, False, False
    ctx = mtmd.mtmd_init_from_file(str(mmproj).encode(), llm._model.model, params)
    if not ctx:
        raise EdgetuneError(f"llama.cpp could not load {mmproj} as an mmproj for {lm_gguf}.")
    try:
        rgb = image.convert("RGB")
        data = (ctypes.c_uint8 * (rgb.width * rgb.height * 3)).from_buffer_copy(rgb.tobytes())
        bitmap = mtmd.mtmd_bitmap_init(rgb.width, rgb.height, data)
        marker = mtmd.mtmd_default_marker()
        text = mtmd.mtmd_input_text(marker, len(marker), False, True)
        chunks = mtmd.mtmd_input_chunks_init()
        bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
        if mtmd.mtmd_tokenize(ctx, chunks, ctypes.byref(text), bitmaps, 1) != 0:
            raise EdgetuneError("llama.cpp could not tokenise the sample image with the mmproj.")
        n_embd = llama_cpp.llama_model_n_embd(llm._model.model)
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) != mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                continue
            n = mtmd.mtmd_input_chunk_get_n_tokens(chunk)
            if mtmd.mtmd_encode_chunk(ctx, chunk) != 0:
                raise EdgetuneError("llama.cpp failed to encode the sample image with the mmproj.")
            embd = mtmd.mtmd_get_output_embd(ctx)
            return np.ctypeslib.as_array(embd, shape=(n * n_embd,)).reshape(n, n_embd).copy()
        raise EdgetuneError("llama.cpp produced no image chunk for the sample image.")
    finally:
        mtmd.mtmd_free(ctx)
        llm.close()


def verify_mmproj(model_dir: Path, lm_gguf: Path | None, mmproj: Path):
    """VerifyReport for the mmproj: llama.cpp's image embeddings vs transformers' on a sample picture."""
    import numpy as np

    from engine.vision.merge import sample_image
    from exporters.gguf.verify import VerifyReport

    from engine.vision import read_config

    start = time.perf_counter()
    report = VerifyReport(file=mmproj.name, type="mmproj-f16", size_bytes=mmproj.stat().st_size)
    size = int(read_config(model_dir)["vision_config"]["image_size"])
    image = sample_image(size)  # exactly the encoder's size: no resampling difference between the two
    try:
        if lm_gguf is None:
            raise EdgetuneError("no language-model GGUF was written to load the mmproj with")
        ours = llama_cpp_image_embeddings(lm_gguf, mmproj, image)
        ref = transformers_image_embeddings(model_dir, image)
    except (EdgetuneError, AttributeError, OSError) as e:
        report.problems.append(f"mmproj not verified: {e}")
        report.logits_check = "fail"
        report.seconds = time.perf_counter() - start
        return report
    report.tokens_checked = report.positions = int(ref.shape[0])
    if ours.shape != ref.shape:
        report.problems.append(f"llama.cpp gives {ours.shape[0]} image embeddings of width {ours.shape[1]}, "
                               f"transformers {ref.shape[0]} of width {ref.shape[1]}")
    else:
        report.nmse = float(((ours - ref) ** 2).sum() / max((ref ** 2).sum(), 1e-30))
        report.tokens_matching = int(ref.shape[0])
        if report.nmse > MAX_EMBED_NMSE:
            from exporters.gguf.mmproj import projector_layout

            why = projector_layout(model_dir).explain_mismatch(model_dir, image, ours)
            report.problems.append(f"image embeddings differ from transformers': NMSE {report.nmse:.2e} > {MAX_EMBED_NMSE:g}"
                                   + (f"; {why}" if why else ""))
    if not report.problems:
        from exporters.gguf.vision_prompt_check import add_image_prompt_check

        add_image_prompt_check(report, model_dir, lm_gguf, mmproj, image)
    report.logits_check = "fail" if report.problems else "pass"
    report.passed = not report.problems
    report.seconds = time.perf_counter() - start
    return report
