"""ONNX export: an LLM-grade ONNX model (KV cache, grouped-query attention, int4 MatMulNBits)
built with ONNX Runtime GenAI's model builder, checked against the Hugging Face model.

    engine export onnx smollm2-135m-instruct --precision int4           # -> exports/<model>/onnx-int4/
    engine export onnx runs/quickstart --precision int4 --target mobile # -> runs/quickstart/exports/onnx-int4-mobile/

Modules, in the order an export uses them:
    (engine/formats/onnx_targets.py: precisions and targets (cpu, mobile, cuda, dml), pairs the builder supports)
    architectures.py  Hugging Face architectures the builder turns into GenAI graphs
    build.py          stage the HF folder, run the builder in a child process, fix up its output
    tokenizer_fix.py  make tokenizer.json readable by onnxruntime-extensions
    verify.py         tokenizer round-trip, logits vs HF fp32, greedy chat stops at end-of-turn
    (engine/runtimes/onnx_genai.py: `OnnxChatModel`, stream a chat reply from an export; chat uses it too)
    speed.py          tokens/s of a short greedy generation
    readme.py         the README.md written next to the model (how to run it, on a phone too)
    exporter.py       `export_onnx`: the whole job, temp folder renamed when complete
    cli.py            `engine export onnx ...`
"""
