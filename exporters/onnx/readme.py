"""The README.md written into every ONNX export: what it is, how well it matched, how to run it.

For the `mobile` target it also says how much memory the phone needs and how to run the
folder with onnxruntime-genai on Android (Java/Kotlin API) and iOS (C API).
"""

from __future__ import annotations

from pathlib import Path

from engine.formats.onnx_targets import Target

PIP_PACKAGE = {"cpu": "onnxruntime-genai", "mobile": "onnxruntime-genai", "cuda": "onnxruntime-genai-cuda",
               "dml": "onnxruntime-genai-directml"}
SENTINEL = "\x00MESSAGE\x00"


def prompt_pattern(hf_tok) -> str:
    """The chat template rendered around one user message, with %s where the message goes."""
    text = hf_tok.apply_chat_template([{"role": "user", "content": SENTINEL}], tokenize=False, add_generation_prompt=True)
    return text.replace("%", "%%").replace(SENTINEL, "%s")


def kv_cache_mb(genai_config: dict) -> float:
    """KV-cache memory onnxruntime-genai preallocates for search.max_length tokens (fp32/fp16 cache)."""
    d = genai_config["model"]["decoder"]
    tokens = int(genai_config.get("search", {}).get("max_length") or genai_config["model"]["context_length"])
    return 2 * d["num_hidden_layers"] * d["num_key_value_heads"] * d["head_size"] * tokens * 4 / 2**20


def write_readme(folder: Path, info: dict, target: Target, genai_config: dict, pattern: str,
                 image_prompt: str | None = None) -> Path:
    """Write folder/README.md from the export's facts (`info` is what export.json holds).

    `image_prompt`: for a VLM export, a one-image chat prompt as the model's template renders it."""
    v = info.get("verification") or {}
    verified = ("not run (--no-verify)" if not v else
                f"{'passed' if v['passed'] else 'FAILED'} — logits vs the HF model in fp32: NMSE {v['nmse']:.2e}, "
                f"top-1 agreement {v['top1']:.1%}, KL {v['kl']:.4f} nats/token; tokenizer identical to transformers: "
                f"{'yes' if v['tokenizer_ok'] else 'no'}; greedy replies that stop at the end-of-turn token: "
                f"{v['free_run_stops']} (see verify.json)")
    speed = info.get("speed") or {}
    lines = [
        f"# {info['model_name']} — ONNX {info['precision']} for {target.name}",
        "",
        f"Built by edgetune (`engine export onnx`) from `{info['source']}` with ONNX Runtime GenAI's model builder "
        f"{info['builder_version']}: one decoder graph with KV cache and grouped-query attention"
        f"{', int4 MatMulNBits weights' if info['precision'] == 'int4' else ''}. Target: {target.help}",
        "",
        f"- Size: {info['size_mb']:.1f} MB on disk (weights in model.onnx.data).",
        f"- Verification: {verified}.",
    ]
    if speed:
        lines.append(f"- Speed where it was built: {speed['tokens_per_s']} tokens/s greedy decode, prefill of "
                     f"{speed['prompt_tokens']} tokens {speed['prefill_ms']} ms ({speed['provider']} provider).")
    lines += [
        f"- End-of-turn token id(s): {genai_config['model']['eos_token_id']}; window: "
        f"{genai_config['search']['max_length']} tokens (search.max_length in genai_config.json).",
        "",
        "Files: `genai_config.json` (runtime settings), `model.onnx` + `model.onnx.data` (graph and weights), "
        "`tokenizer.json`, `tokenizer_config.json`, `chat_template.jinja`, `verify.json`, `export.json`, `build.log` "
        "(the builder's output).",
        "",
        "## Run it (Python)",
        "",
        "```bash",
        f"pip install {PIP_PACKAGE[target.name]}",
        "```",
        "",
        "```python",
        "import json, onnxruntime_genai as og",
        "",
        'model = og.Model("PATH/TO/THIS/FOLDER")',
        "tokenizer = og.Tokenizer(model)",
        'prompt = tokenizer.apply_chat_template(json.dumps([{"role": "user", "content": "Hello!"}]), add_generation_prompt=True)',
        "params = og.GeneratorParams(model)",
        'params.set_search_options(max_length=512, do_sample=False)',
        "generator = og.Generator(model, params)",
        "generator.append_tokens(tokenizer.encode(prompt))",
        "stream = tokenizer.create_stream()",
        "while not generator.is_done():",
        "    generator.generate_next_token()",
        '    print(stream.decode(generator.get_next_tokens()[0]), end="", flush=True)',
        "```",
        "",
        "Or with edgetune: `from engine.runtimes.onnx_genai import OnnxChatModel`.",
    ]
    if image_prompt is not None:
        lines += _image_section(genai_config, image_prompt)
    if target.name == "mobile":
        weights_mb = info["size_mb"]
        lines += [
            "",
            "## On a phone (Android / iOS)",
            "",
            f"Memory: about {weights_mb:.0f} MB of weights plus {kv_cache_mb(genai_config):.0f} MB of KV cache "
            f"(preallocated for the {genai_config['search']['max_length']}-token window; lower `search.max_length` in "
            f"genai_config.json to shrink it). The graph runs on the CPU execution provider with int4 weights and int8 "
            f"activations (accuracy level 4), the fast path on ARMv8.2+ cores with dot-product instructions.",
            "",
            "Copy this whole folder to the device (app files directory or, for a quick test, "
            "`adb push <folder> /data/local/tmp/model`). Do not put it in compressed APK assets: onnxruntime needs "
            "real files to map `model.onnx.data`.",
            "",
            "**Android** — onnxruntime-genai's Java API (`ai.onnxruntime.genai`), built as an AAR with "
            "`python build.py --build_java --android --android_abi arm64-v8a ...` "
            "(https://onnxruntime.ai/docs/genai/howto/build-from-source.html). From Kotlin:",
            "",
            "```kotlin",
            "import ai.onnxruntime.genai.SimpleGenAI",
            "",
            "val genAI = SimpleGenAI(modelDir)                      // this folder on the device",
            f"val prompt = String.format({_kotlin_string(pattern)}, userMessage)  // the model's chat template",
            "val params = genAI.createGeneratorParams()",
            'params.setSearchOption("max_length", 512.0)',
            "val reply = genAI.generate(params, prompt) { piece -> runOnUiThread { textView.append(piece) } }",
            "```",
            "",
            "**iOS** — link the onnxruntime-genai C API (`ort_genai.h`, built for iOS from the same repository) and "
            "call `OgaModel::Create(modelDir)`, `OgaTokenizer::Create(*model)`, `OgaGeneratorParams`, "
            "`OgaGenerator::AppendTokenSequences` and `GenerateNextToken` in a loop until `IsDone()`; ship the folder "
            "as an app resource. The prompt is the same chat-template pattern as above.",
        ]
    path = Path(folder) / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _image_section(genai_config: dict, image_prompt: str) -> list[str]:
    """How to ask about a picture: the multimodal processor expands the image placeholder and makes the pixels."""
    model = genai_config["model"]
    return [
        "",
        "## With an image",
        "",
        f"This is ONNX Runtime GenAI's `{model['type']}` multimodal pipeline: `{model['vision']['filename']}` (vision "
        f"encoder + projector) turns the picture into image features, `{model['embedding']['filename']}` puts them in "
        f"place of the image tokens, the decoder does the rest; `processor_config.json` is the image preprocessing "
        f"(onnxruntime-extensions). One image per prompt.",
        "",
        "```python",
        "processor = model.create_multimodal_processor()",
        f"prompt = {image_prompt!r}  # the chat template with an image part",
        'inputs = processor(prompt, images=og.Images.open("photo.png"))',
        "params = og.GeneratorParams(model)",
        'params.set_search_options(max_length=1024, do_sample=False)',
        "generator = og.Generator(model, params)",
        "generator.set_inputs(inputs)",
        "while not generator.is_done():",
        "    generator.generate_next_token()",
        '    print(processor.decode(generator.get_next_tokens()[0]), end="", flush=True)',
        "```",
        "",
        "Or with edgetune: `engine chat PATH/TO/THIS/FOLDER --image photo.png`.",
    ]


def _kotlin_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("$", "\\$") + '"'
