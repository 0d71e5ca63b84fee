"""The one typed run config.

Every option of a training run lives here, once, with its help text. The CLI's
`key=value` overrides, the YAML presets, the desktop app's form fields and their
tooltips, and `engine config --help-fields` all read these dataclasses, so this
file is the single documentation of every option.

Sections are dataclasses; a field's `metadata["help"]` is its documentation and
`metadata["choices"]` (when present) the allowed values. Values that are decided
at train start from the machine (batch size, gradient checkpointing, backend)
accept the string "auto".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union

# The ONNX exporter's registries (plain dataclasses, no heavy imports) name its precisions and targets.
from engine.formats.onnx_targets import PRECISIONS as ONNX_PRECISIONS
from engine.formats.onnx_targets import TARGETS as ONNX_TARGETS

from engine.config.option import opt
from engine.train.methods import METHODS as METHOD_OBJECTS
from engine.train.methods import method_names
from engine.config.dist import DistSettings
from engine.config.rl_settings import RlSettings
from engine.config.stages import STAGES, DpoSettings, KtoSettings, OrpoSettings, RmSettings, SimpoSettings

Auto = Literal["auto"]


@dataclass
class ModelSettings:
    name_or_path: str = opt(
        "smollm2-135m-instruct",
        "Model to fine-tune: the bundled default 'smollm2-135m-instruct', a local Hugging Face "
        "folder, a single .gguf file (de-quantised once and cached) or a hub id such as "
        "'HuggingFaceTB/SmolLM2-360M-Instruct' (needs network the first time).",
    )
    revision: Optional[str] = opt(None, "Hub revision (branch, tag or commit) when name_or_path is a hub id.")
    chat_template: Optional[str] = opt(
        None,
        "Chat template to render conversations with instead of the model's own: a built-in name "
        "(plain = '### User / ### Assistant' with EOS, chatml, llama3, gemma, phi3), a Jinja file or "
        "the template text. Leave empty to use the tokenizer's template; a base model without one "
        "needs a name here for chat data (raw text needs none). Saved with the adapter, so chat "
        "and exports use the same one.",
    )
    trust_remote_code: bool = opt(False, "Allow model code from the hub to run. Off unless you trust the repo.")


@dataclass
class DataSettings:
    path: str = opt(
        "",
        "Training data: a .json/.jsonl/.csv/.parquet file or a folder saved with "
        "datasets.save_to_disk. Alpaca, ShareGPT, OpenAI 'messages', raw text, preference "
        "(prompt/chosen/rejected, incl. TRL's conversational/implicit-prompt and LLaMA-Factory's "
        "sharegpt/alpaca ranking layouts) and KTO (prompt/completion/label) records are detected automatically.",
    )
    format: str = opt(
        "auto",
        "Record format; 'auto' detects it from the first record.",
        choices=["auto", "alpaca", "sharegpt", "messages", "text", "preference", "kto"],
    )
    columns: dict = opt(
        {},
        "Map the format's field names to your columns, e.g. {instruction: question, output: "
        "answer} or {text: body}. Fields: alpaca instruction/input/output/system; sharegpt "
        "conversations; messages messages; text text; preference prompt/chosen/rejected; kto "
        "prompt/completion/label.",
    )
    system_prompt: Optional[str] = opt(None, "System prompt added to every conversation that has none.")
    loss_on: str = opt(
        "assistant",
        "Which tokens of a chat record carry loss: 'assistant' (the answers and their end-of-turn "
        "token; the prompt is label -100) or 'all' (every token, prompt and template markers too). "
        "Raw text always trains on every token.",
        choices=["assistant", "all"],
    )
    on_error: str = opt(
        "abort",
        "What to do with a malformed record: 'abort' stops with its file:line, 'skip' drops it "
        "and counts it.",
        choices=["abort", "skip"],
    )
    eval_split: float = opt(
        0.0,
        "Fraction of records held out for evaluation (0 = none). Needed for early stopping.",
    )
    eval_path: Optional[str] = opt(None, "A separate evaluation file; overrides eval_split.")


@dataclass
class SequenceSettings:
    max_len: int = opt(
        1024,
        "Longest training sequence in tokens. Longer records are truncated (keeping the EOS) "
        "and counted; raw text is cut into windows of this length.",
    )
    max_prompt_len: Union[int, Auto] = opt(
        "auto",
        "Preference, KTO and RL stages: longest prompt in tokens; longer prompts lose their start (the question "
        "at the end is kept) before any answer token is cut. 'auto' = cut the prompt only as far as the longest "
        "answer needs, never below half of max_len. A pair left with no answer token is dropped and counted. RL stages: "
        "older turns go first, then the start of the last message; 'auto' = max_len - rl.max_completion_len; a prompt "
        "that cannot fit beside the chat template is dropped and counted.",
    )
    packing: bool = opt(
        False,
        "Pack several short samples into one sequence to remove padding waste; position ids "
        "restart per sample so samples do not attend to each other.",
    )


@dataclass
class QuantSettings:
    load_in: str = opt(
        "auto",
        "Precision of the frozen base weights: 'auto' = 4bit for method qlora, 16/32-bit "
        "otherwise; '4bit' (bitsandbytes), '8bit' or 'none'.",
        choices=["auto", "4bit", "8bit", "none"],
    )
    quant_type: str = opt(
        "nf4",
        "4-bit data type: 'nf4' (normal-float, best for normally distributed weights) or 'fp4'.",
        choices=["nf4", "fp4"],
    )
    double_quant: bool = opt(
        True,
        "Quantise the quantisation constants too (about 0.37 bits/param saved, QLoRA paper).",
    )
    compute_dtype: str = opt(
        "auto",
        "dtype of the frozen base weights and the matmuls: 'auto' = bf16 on a GPU that supports "
        "it, fp16 on older GPUs, bf16 on CPUs with native bf16 (AVX512-BF16/AMX), else fp32. "
        "Trainable LoRA weights always stay fp32.",
        choices=["auto", "bf16", "fp16", "fp32"],
    )


@dataclass
class LoraSettings:
    r: int = opt(16, "LoRA rank: size of the low-rank update. 8-64 is usual; higher learns more, costs more.")
    alpha: int = opt(32, "LoRA alpha: the update is scaled by alpha/r (alpha/sqrt(r) with rslora).")
    dropout: float = opt(
        0.0,
        "Dropout on the LoRA input. 0 (peft's and Unsloth's default) keeps no dropout mask or copy of each adapter's "
        "input: faster and leaner; try 0.05-0.1 if a long run on little data over-fits.",
    )
    target_modules: Union[str, list] = opt(
        "all-linear",
        "Layers to adapt: 'all-linear' (every linear layer but the output head; best quality), "
        "'attention' (q,k,v,o) or an explicit list such as [q_proj, v_proj].",
    )
    rslora: bool = opt(False, "Rank-stabilised LoRA: scale by alpha/sqrt(r); helps at high ranks.")
    init: str = opt(
        "gaussian",
        "LoRA initialisation: 'gaussian' (A random, B zero: training starts at the base), 'pissa' (A, B from the "
        "weight's top singular vectors, the rest left in the base: faster convergence) or 'olora' (from a QR "
        "factorisation). pissa/olora need a 16/32-bit base.",
        choices=["gaussian", "pissa", "olora"],
    )
    plus_lr_ratio: float = opt(
        0.0,
        "LoRA+: train B with this many times A's learning rate (16 is the paper's choice; faster learning at the same "
        "cost). 0 = off (one learning rate). LoRA-family methods only.",
    )
    train_projector: bool = opt(
        False,
        "Vision-language models: also train the projector (the connector that maps image features into the LM), "
        "saved with the adapter. Off: LoRA on the LM only; the vision side stays frozen.",
    )
    vision_tower: bool = opt(
        False,
        "Vision-language models: also put LoRA on the vision encoder's linear layers (lora.target_modules read on the "
        "encoder: 'all-linear' = its attention and MLP), merged into the encoder and exported with it (the mmproj GGUF). "
        "For images unlike the encoder's pre-training (documents, screenshots, medical); costs the encoder's activations "
        "per image patch (engine plan shows them). Off: the encoder stays frozen and saves nothing for backward.",
    )


@dataclass
class PromptSettings:
    num_virtual_tokens: int = opt(
        20, "Soft-prompt methods (prompt, ptuning, prefix, ptuning_v2): trainable tokens put in front of every sequence "
        "(prefix methods: in front of every layer's keys and values). 10-100 is usual; each costs activations like a real token."
    )
    init_text: str = opt(
        "", "method=prompt: initialise the soft prompt from this text's token embeddings (e.g. a task description); "
        "empty = random. method=ptuning_v2: start every layer's prefix as the base model's keys/values of this text; "
        "empty = a neutral assistant instruction (a random start at that scale is far from any real token and does not learn)."
    )


@dataclass
class AdapterSettings:
    size: int = opt(
        64, "Bottleneck adapters (adapter_serial, adapter_parallel): width of the down-projection. 16-256 is usual; "
        "trainable parameters grow linearly with it."
    )


@dataclass
class OptimSettings:
    optimizer: str = opt(
        "adamw_torch",
        "Optimizer: 'adamw_torch' (8 bytes/param of state), 'adamw_8bit' (2 bytes/param, "
        "bitsandbytes) or 'paged_adamw_8bit' (8-bit and paged to ride out memory spikes).",
        choices=["adamw_torch", "adamw_8bit", "paged_adamw_8bit"],
    )
    lr: float = opt(2e-4, "Peak learning rate. LoRA/QLoRA: 1e-4..2e-4 (up to 1e-3 for tiny models); full: ~1e-5.")
    weight_decay: float = opt(0.0, "AdamW weight decay.")
    warmup_ratio: float = opt(0.03, "Fraction of steps spent warming the lr up from 0.")
    scheduler: str = opt(
        "cosine", "Learning-rate schedule after warm-up.", choices=["cosine", "linear", "constant"]
    )
    epochs: float = opt(3.0, "Passes over the training data (ignored when max_steps > 0).")
    max_steps: int = opt(0, "Stop after this many optimizer steps; 0 = use epochs.")
    batch_size: Union[int, Auto] = opt(
        "auto",
        "Micro-batch size per step. 'auto' (default): the largest the memory planner fits on this device, up to "
        "16 (`engine plan` shows the pick; the first events of a run say it, and a resumed run keeps it). A number "
        "fixes it, e.g. to compare runs across machines: the effective batch is batch_size x grad_accum.",
    )
    grad_accum: int = opt(1, "Gradient accumulation steps; effective batch = batch_size * grad_accum.")
    max_grad_norm: float = opt(1.0, "Clip gradients to this norm (0 = no clipping).")


@dataclass
class TrainSettings:
    backend: str = opt(
        "auto",
        "Training backend: 'auto' = unsloth when a CUDA GPU and unsloth are present, else 'hf' "
        "(transformers + peft + TRL).",
        choices=["auto", "hf", "unsloth"],
    )
    gradient_checkpointing: Union[bool, Literal["auto", "offload"]] = opt(
        "auto",
        "Recompute activations in the backward pass: ~30% slower, far less memory. 'auto' "
        "turns it on when the planner says the run does not fit without it; 'offload' also keeps each "
        "layer's saved input in CPU RAM instead of GPU memory (hf backend on CUDA; the same as true on CPU).",
    )
    offload_embedding: Union[bool, Literal["auto"]] = opt(
        "auto",
        "Keep the frozen input-embedding table in CPU RAM and send only the looked-up rows to the GPU (as "
        "Unsloth's offload_embedding): frees vocab x hidden x 2 bytes of GPU memory (1.0 GB on Llama-3.1-8B) "
        "for one small copy per step. 'auto' = on for adapter methods on a GPU when the table is frozen and "
        "not tied to the output head (single process or dist.strategy=ddp); true = the same, and an error where it "
        "cannot apply; nothing changes on a CPU.",
    )
    freeze_layers: int = opt(
        2, "Method 'freeze': train only the top N transformer layers (and the norm), freeze the rest."
    )
    logging_steps: int = opt(1, "Emit a train-loss event every N optimizer steps.")
    save_steps: int = opt(0, "Write a resumable checkpoint every N steps (0 = only at the end of each epoch).")
    eval_steps: int = opt(0, "Evaluate every N steps when there is eval data (0 = once per epoch).")
    early_stopping_patience: int = opt(
        0, "Stop when eval loss has not improved for N evaluations (0 = off). Needs eval data."
    )
    keep_checkpoints: int = opt(2, "How many step checkpoints to keep in the run folder.")


@dataclass
class ExportSettings:
    targets: list = opt(
        [],
        "Exports to run when training completes, into <output_dir>/exports: any of [gguf, onnx] "
        "(gguf with gguf_quant, onnx with onnx_precision on onnx_device), each verified as "
        "`engine export` does. Empty = none; `engine export` works on the run folder any time.",
    )
    gguf_quant: str = opt(
        "auto",
        "GGUF type: f32, f16, bf16, q8_0 (written directly) or a llama.cpp quant such as q4_k_m, "
        "q5_k_m, q6_k; 'auto' = quantise to q4_k_m, q5_k_m, q6_k, q8_0 in turn, run each in llama.cpp "
        "against the HF model and keep the smallest with mean KL <= 0.05 and top-1 agreement >= 90% "
        "(an 8B model usually lands on q4_k_m, SmolLM2-135M on q6_k); with verification off: q8_0 "
        "under 1B parameters (tiny models suffer from 4-bit), q4_k_m above.",
    )
    onnx_precision: str = opt(
        "int4",
        "ONNX weight precision: " + " ".join(f"{p.name}: {p.help}" for p in ONNX_PRECISIONS.values()),
        choices=list(ONNX_PRECISIONS),
    )
    onnx_device: str = opt(
        "cpu",
        "ONNX execution target: " + " ".join(f"{t.name} ({'/'.join(t.precisions)}): {t.help}" for t in ONNX_TARGETS.values()),
        choices=list(ONNX_TARGETS),
    )


METHODS = method_names()


@dataclass
class RunConfig:
    """Everything one training run needs; saved as config.yaml in the run folder."""

    stage: str = opt(
        "sft",
        "Training stage (recipe): " + "; ".join(f"'{k}' = {v}" for k, v in STAGES.items()) + ". Preference stages "
        "usually start from an SFT run: model=runs/<sft-run>.",
        choices=list(STAGES),
    )
    method: str = opt(
        "qlora",
        "Fine-tuning method (`engine compare` measures them on your data): "
        + " ".join(f"'{m.name}' = {m.summary}" for m in METHOD_OBJECTS.values()),
        choices=METHODS,
    )
    output_dir: str = opt("runs/run", "Run folder: config.yaml, events.jsonl, adapter/, checkpoints/, merged/, exports/.")
    seed: int = opt(42, "Random seed for data shuffling, the eval split and LoRA initialisation.")
    model: ModelSettings = field(default_factory=ModelSettings, metadata={"help": "Base model."})
    data: DataSettings = field(default_factory=DataSettings, metadata={"help": "Training data."})
    sequence: SequenceSettings = field(default_factory=SequenceSettings, metadata={"help": "Sequence length and packing."})
    quant: QuantSettings = field(default_factory=QuantSettings, metadata={"help": "Base-weight quantisation (QLoRA)."})
    lora: LoraSettings = field(default_factory=LoraSettings, metadata={"help": "LoRA adapter shape (also LoHa, LoKr, VeRA, AdaLoRA)."})
    prompt: PromptSettings = field(default_factory=PromptSettings, metadata={"help": "Soft-prompt methods."})
    adapter: AdapterSettings = field(default_factory=AdapterSettings, metadata={"help": "Bottleneck adapter methods."})
    optim: OptimSettings = field(default_factory=OptimSettings, metadata={"help": "Optimizer and schedule."})
    train: TrainSettings = field(default_factory=TrainSettings, metadata={"help": "Training loop."})
    export: ExportSettings = field(default_factory=ExportSettings, metadata={"help": "Exports after training."})
    dpo: DpoSettings = field(default_factory=DpoSettings, metadata={"help": "stage=dpo only."})
    orpo: OrpoSettings = field(default_factory=OrpoSettings, metadata={"help": "stage=orpo only."})
    simpo: SimpoSettings = field(default_factory=SimpoSettings, metadata={"help": "stage=simpo only."})
    kto: KtoSettings = field(default_factory=KtoSettings, metadata={"help": "stage=kto only."})
    rm: RmSettings = field(default_factory=RmSettings, metadata={"help": "stage=rm only."})
    rl: RlSettings = field(default_factory=RlSettings, metadata={"help": "stage=grpo and stage=rloo (online RL) only."})
    dist: DistSettings = field(default_factory=DistSettings, metadata={"help": "More than one process/GPU/node."})


# Short names people type, on the command line and at the top of a YAML file.
ALIASES = {
    "model": "model.name_or_path",
    "data": "data.path",
    "lr": "optim.lr",
    "epochs": "optim.epochs",
    "max_steps": "optim.max_steps",
    "batch_size": "optim.batch_size",
    "grad_accum": "optim.grad_accum",
    "max_len": "sequence.max_len",
    "lora_r": "lora.r",
    "lora_alpha": "lora.alpha",
    "max_prompt_len": "sequence.max_prompt_len",
}
