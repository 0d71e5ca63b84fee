"""Preference recipes on a tiny random Llama: each trains, its metric moves the right way, runs resume
bit for bit, refusals name the fix, and evaluation/scoring read the finished runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError, DataError, EdgetuneError
from engine.events import SCHEMA
from tests.engine.run_helpers import train
from tests.conftest import write_jsonl

PAIRS = [{"prompt": f"Say the code for item {i}.", "chosen": f"Code {i}{i}{i}.", "rejected": f"I do not know item {i}, sorry."}
         for i in range(8)]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", PAIRS)


def make_cfg(model, data, out, stage, *extra):
    return load_config(None, [f"model={model}", f"data={data}", f"output_dir={out}", f"stage={stage}", "method=lora",
                              "batch_size=4", "max_len=64", "lr=3e-3", "optim.warmup_ratio=0", "lora.dropout=0",
                              "train.backend=hf", "optim.scheduler=constant", *extra])




def metric_series(events, name):
    return [e["metrics"][name] for e in events if e["type"] == "step" and name in e.get("metrics", {})]


# stage -> (metric that must rise, extra settings)
RISING = {"dpo": "reward_margin", "orpo": "reward_margin", "simpo": "reward_margin", "kto": "reward_margin",
          "rm": "margin"}


@pytest.fixture(scope="module")
def stage_runs(tiny_model_dir, pairs_file, tmp_path_factory):
    """One short run per preference stage (shared by the tests below)."""
    root = tmp_path_factory.mktemp("stages")
    runs = {}
    for stage in RISING:
        cfg = make_cfg(tiny_model_dir, pairs_file, root / stage, stage, "max_steps=6")
        runs[stage] = (root / stage,) + train(cfg)
    return runs


@pytest.mark.parametrize("stage", list(RISING))
def test_each_stage_trains_and_its_metric_moves(stage_runs, stage):
    run, result, events, recipe = stage_runs[stage]
    assert result["status"] == "completed" and (run / "adapter" / "adapter_config.json").is_file()
    started = events[0]
    assert started["type"] == "run_started" and started["stage"] == stage
    assert all(k in e for e in events for k in SCHEMA[e["type"]])
    series = metric_series(events, RISING[stage])
    # KTO logs its rewards only for steps whose batch holds both labels (its rows are shuffled)
    assert len(series) >= (3 if stage == "kto" else 6) and series[-1] > series[0], series
    saved = (run / "config.yaml").read_text()
    assert f"stage: {stage}" in saved and ("dpo:" in saved) == (stage == "dpo")
    assert json.loads((run / "fingerprint.json").read_text())["stage"] == stage


def test_reward_model_saves_its_score_head(stage_runs):
    from safetensors.torch import load_file

    run = stage_runs["rm"][0]
    keys = load_file(str(run / "adapter" / "adapter_model.safetensors")).keys()
    assert any("score" in k for k in keys) and any("lora_A" in k for k in keys)
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"


def test_dpo_reference_is_the_policy_with_its_adapter_disabled(stage_runs):
    recipe = stage_runs["dpo"][3]
    assert list(recipe.model.peft_config) == ["default"]  # no second ('ref') copy of the adapter
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in recipe.model.parameters() if p.requires_grad)


def test_dpo_resume_matches_uninterrupted_run(tiny_model_dir, pairs_file, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from engine.train.callbacks import GracefulStop

    common = ["max_steps=4", "train.save_steps=2", "train.keep_checkpoints=10", "dpo.beta=0.2"]
    train(make_cfg(tiny_model_dir, pairs_file, tmp_path / "full", "dpo", *common))
    original = GracefulStop.on_step_end

    def stop_at_2(self, args, state, control, **kw):
        self.requested = self.requested or state.global_step == 2
        return original(self, args, state, control, **kw)

    monkeypatch.setattr(GracefulStop, "on_step_end", stop_at_2)
    cfg = make_cfg(tiny_model_dir, pairs_file, tmp_path / "part", "dpo", *common)
    assert train(cfg)[0]["status"] == "interrupted"
    monkeypatch.setattr(GracefulStop, "on_step_end", original)
    result, events, _ = train(cfg, resume="latest")
    assert events[0]["resumed_from"].endswith("step-2") and result["status"] == "completed"
    a = load_file(str(tmp_path / "full" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "part" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # bit for bit on CPU
    # resuming as another stage is refused, naming it
    with pytest.raises(EdgetuneError, match=r"stage: 'dpo' -> 'orpo'"):
        train(make_cfg(tiny_model_dir, pairs_file, tmp_path / "part", "orpo", "max_steps=6"), resume="latest")


def test_stage_sections_belong_to_their_stage():
    with pytest.raises(ConfigError, match=r"dpo.beta is an option of stage=dpo, but stage=kto"):
        load_config(None, ["stage=kto", "dpo.beta=0.3"])
    with pytest.raises(ConfigError, match=r"'stage'.*got 'ppo'; allowed values: sft, dpo, orpo, simpo, kto, rm"):
        load_config(None, ["stage=ppo"])
    cfg = load_config(None, ["stage=kto", "kto.desirable_weight=1.3"])
    assert cfg.kto.desirable_weight == 1.3


def test_unknown_recipe_lists_known_ones():
    from engine.train.recipes import get_recipe

    with pytest.raises(ConfigError, match=r"known stages: sft, dpo, orpo, simpo, kto, rm"):
        get_recipe("ppo")


def test_data_of_the_wrong_kind_names_the_stages_that_fit(tiny_model_dir, pairs_file, tmp_path):
    chat = write_jsonl(tmp_path / "chat.jsonl", [{"instruction": "hi", "output": "hello"}] * 4)
    with pytest.raises(DataError, match=r"stage=dpo cannot train on.*Use stage=sft"):
        train(make_cfg(tiny_model_dir, chat, tmp_path / "a", "dpo", "max_steps=1"))
    with pytest.raises(DataError, match=r"preference pairs.*stage=dpo \(or orpo, simpo, kto, rm\)"):
        train(make_cfg(tiny_model_dir, pairs_file, tmp_path / "b", "sft", "max_steps=1"))


@pytest.mark.parametrize("record, message", [
    ({"prompt": "q", "chosen": "same", "rejected": "same"}, "chosen and rejected are identical"),
    ({"prompt": "q", "chosen": "", "rejected": "b"}, "field 'chosen' is missing or empty"),
    ({"chosen": "a", "rejected": "b"}, "no prompt"),
    ({"prompt": "q", "completion": "a", "label": "yes"}, "must be true .* or false"),
])
def test_bad_preference_records_stop_with_file_and_line(tmp_path, record, message):
    from engine.data.dataset import load_examples

    good = {"prompt": "q", "chosen": "a", "rejected": "b"} if "chosen" in record else {"prompt": "q", "completion": "a", "label": True}
    path = write_jsonl(tmp_path / "d.jsonl", [good, record])
    with pytest.raises(DataError, match=rf"d.jsonl:2: .*{message}"):
        load_examples(str(path))
    skipped = load_examples(str(path), on_error="skip")
    assert len(skipped.examples) == 1 and len(skipped.skipped) == 1


def test_preference_layouts_give_the_same_pair(smol_tokenizer):
    from engine.data.formats import FORMATS, detect_format
    from engine.data.pairs import PairEncoder

    layouts = [
        {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "A colour is a thing."},
        {"prompt": [{"role": "user", "content": "Name a colour."}], "chosen": [{"role": "assistant", "content": "Blue."}],
         "rejected": [{"role": "assistant", "content": "A colour is a thing."}]},
        {"chosen": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
         "rejected": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "A colour is a thing."}]},
        {"conversations": [{"from": "human", "value": "Name a colour."}], "chosen": {"from": "gpt", "value": "Blue."},
         "rejected": {"from": "gpt", "value": "A colour is a thing."}},
        {"instruction": "Name a colour.", "input": "", "chosen": "Blue.", "rejected": "A colour is a thing."},
    ]
    enc = PairEncoder(smol_tokenizer, 128)
    pairs = []
    for rec in layouts:
        assert detect_format(rec, {}) == "preference", rec
        pairs.append(enc.pair(FORMATS["preference"].convert(rec, {}, None)))
    assert all(p == pairs[0] for p in pairs)
    p = pairs[0]
    assert smol_tokenizer.decode(p.chosen_ids) == "Blue.<|im_end|>"  # the answer and its end-of-turn, no glue
    assert smol_tokenizer.decode(p.prompt_ids).endswith("<|im_start|>assistant\n")


def test_long_prompts_lose_their_start_before_answers_are_cut(smol_tokenizer):
    from engine.data.formats import Example
    from engine.data.pairs import PairEncoder

    ex = Example("preference", messages=[{"role": "user", "content": "word " * 200 + "Final question?"}],
                 chosen="Yes.", rejected="No, never.")
    pair = PairEncoder(smol_tokenizer, 64).pair(ex)
    assert pair.truncated and len(pair.prompt_ids) + len(pair.rejected_ids) <= 64
    assert smol_tokenizer.decode(pair.chosen_ids) == "Yes.<|im_end|>"
    assert "Final question?" in smol_tokenizer.decode(pair.prompt_ids)
    fixed = PairEncoder(smol_tokenizer, 64, max_prompt_len=63).pair(
        Example("preference", messages=ex.messages, chosen="Yes " * 40, rejected="No."))
    assert fixed is not None and len(fixed.chosen_ids) == 1  # one answer token left within max_len


def test_pairs_with_no_answer_left_are_dropped_and_counted(tiny_model_dir, tmp_path):
    from engine.train.data_build import build_pair_data
    from engine.models.loading import tokenizer_from_dir

    rows = PAIRS[:3] + [{"prompt": "long " * 300, "chosen": "a", "rejected": "b"}]
    data = write_jsonl(tmp_path / "p.jsonl", rows)
    cfg = make_cfg(tiny_model_dir, data, tmp_path / "x", "dpo", "sequence.max_prompt_len=63")
    built = build_pair_data(cfg, tokenizer_from_dir(tiny_model_dir), "pairs")
    assert len(built.train) == 4 and built.truncated == 1  # the long prompt keeps its end
    kto = build_pair_data(load_config(None, [f"model={tiny_model_dir}", f"data={data}", "stage=kto", "max_len=64"]),
                          tokenizer_from_dir(tiny_model_dir), "rated", kinds=("kto", "preference"))
    assert len(kto.train) == 8 and sorted(set(kto.train["label"])) == [False, True]


def test_preference_eval_scores_start_vs_tuned(stage_runs, pairs_file):
    from engine.train.pair_eval import preference_eval

    start, tuned = preference_eval(stage_runs["dpo"][0], str(pairs_file))
    assert start.name == "start" and tuned.name == "tuned" and start.pairs == tuned.pairs == 8
    assert tuned.reward_accuracy == 1.0 and tuned.reward_margin > 0 and tuned.margin > start.margin


def test_score_and_eval_commands_on_reward_model(stage_runs, pairs_file, capsys):
    from engine.cli.main import main

    rm_run = stage_runs["rm"][0]
    assert main(["score", str(rm_run), "--data", str(pairs_file)]) == 0
    out = capsys.readouterr().out
    assert "reward accuracy" in out and "8 pairs" in out
    assert main(["eval", str(rm_run), "--data", str(pairs_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reward"]["pairs"] == 8
    assert main(["score", str(stage_runs["dpo"][0]), "--data", str(pairs_file)]) == 2
    assert "not a reward model" in capsys.readouterr().err


def test_eval_command_on_a_dpo_run(stage_runs, pairs_file, capsys):
    from engine.cli.main import main

    assert main(["eval", str(stage_runs["dpo"][0]), "--data", str(pairs_file)]) == 0
    out = capsys.readouterr().out
    assert "reward acc" in out and "start" in out and "tuned" in out


def test_inspect_shows_a_pair_and_the_stages(tiny_model_dir, pairs_file, capsys, tmp_path):
    from engine.cli.main import main

    assert main(["data", "inspect", str(pairs_file), "--model", str(tiny_model_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "preference" and report["stages"] == ["dpo", "orpo", "simpo", "kto", "rm"]
    assert report["pair"]["chosen"] == "[[Code 000.<|im_end|>]]" and "Say the code" in report["pair"]["prompt"]
    kto = write_jsonl(tmp_path / "k.jsonl", [{"prompt": "q", "completion": "a", "label": False}])
    assert main(["data", "inspect", str(kto), "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "kto can train on this file" in out and "rejected (label false)" in out


def test_trl_experimental_trainers_import():
    """ORPO and CPO (SimPO) live in trl.experimental in the TRL range we pin (<= 1.15)."""
    from trl.experimental.cpo import CPOConfig, CPOTrainer  # noqa: F401
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer  # noqa: F401

    cfg = CPOConfig(output_dir="/tmp/x", loss_type="simpo", cpo_alpha=0.0, use_cpu=True, bf16=False)
    assert cfg.loss_type == "simpo" and cfg.cpo_alpha == 0.0


def test_planner_knows_each_stage_memory():
    from engine.plan import plan_memory

    def plan(*extra):
        cfg = load_config(None, ["model=smollm2-135m-instruct", "batch_size=4", "max_len=512",
                                 "train.gradient_checkpointing=false", *extra])
        return plan_memory(cfg, "cuda", 24.0)

    sft, dpo = plan("method=lora"), plan("method=lora", "stage=dpo")
    assert dpo.stage == "dpo" and "2 sequences" in dpo.notes["activations"]
    assert dpo.breakdown["activations"] > 1.9 * sft.breakdown["activations"]  # chosen + rejected per pair
    assert "reference model" not in dpo.breakdown  # LoRA: the policy with its adapter disabled
    full = plan("method=full", "quant.load_in=none", "stage=dpo")
    assert full.breakdown["reference model"] > 0.2  # a frozen copy of the 135M start model
    assert "reference model" not in plan("method=full", "quant.load_in=none", "stage=dpo", "dpo.precompute_ref=true").breakdown
    assert "reference model" not in plan("method=full", "quant.load_in=none", "stage=orpo").breakdown
    rm = plan("method=lora", "stage=rm")
    assert rm.breakdown["logits and loss"] < 0.05 < dpo.breakdown["logits and loss"]  # a score head, no vocabulary


def test_dpo_starts_from_an_sft_run_and_merges_like_one(tiny_model_dir, pairs_file, tmp_path):
    """model=runs/<sft> starts DPO from the SFT result (merged on demand); the DPO run then merges and chats."""
    from engine.chat import ChatSession
    from engine.train.merge import merge_adapter

    toy = write_jsonl(tmp_path / "toy.jsonl", [{"instruction": f"Say the code for item {i}.", "output": f"Code {i}{i}{i}."}
                                              for i in range(8)])
    sft = tmp_path / "sft"
    assert train(make_cfg(tiny_model_dir, toy, sft, "sft", "max_steps=2"))[0]["status"] == "completed"
    result, events, recipe = train(make_cfg(sft, pairs_file, tmp_path / "dpo", "dpo", "max_steps=2"))
    assert result["status"] == "completed" and (sft / "merged" / "config.json").is_file()
    assert Path(recipe.model_dir).resolve() == (sft / "merged").resolve()
    report = merge_adapter(tmp_path / "dpo", dtype="fp32")
    assert report.max_abs_diff <= 1e-4 and report.base_diff > 0
    reply = ChatSession(str(tmp_path / "dpo"), temperature=0, max_tokens=4).ask("Say the code for item 1.")
    assert isinstance(reply, str)


@pytest.mark.slow
def test_dpo_on_the_bundled_model_end_to_end(bundled_model_dir, tmp_path, capsys):
    """The shipped preset's stage on the real model: a few DPO steps, held-out pairs, merge and a GGUF."""
    from engine.cli.main import main

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "dpo"
    assert main(["train", str(repo / "assets/presets/cpu_dpo.yaml"), f"output_dir={out}", "max_steps=2",
                 "batch_size=2", "max_len=64", "--no-progress"]) == 0
    assert main(["eval", str(out), "--data", str(repo / "assets/datasets/brief_heldout.jsonl"), "--json"]) == 0
    pairs = json.loads(capsys.readouterr().out)["pairs"]
    assert [p["name"] for p in pairs] == ["start", "tuned"] and pairs[1]["reward_accuracy"] is not None
    assert main(["export", "gguf", str(out), "--quant", "f16"]) == 0
    assert (out / "merged" / "config.json").is_file() and (out / "exports" / "model-f16.gguf").is_file()


def test_precomputed_reference_trains_without_a_reference_pass(tiny_model_dir, pairs_file, tmp_path):
    result, events, recipe = train(make_cfg(tiny_model_dir, pairs_file, tmp_path / "pre", "dpo", "max_steps=3",
                                            "dpo.precompute_ref=true"))
    assert result["status"] == "completed"
    series = metric_series(events, "reward_margin")
    assert series[-1] > series[0]


def test_trainer_refusals_are_caught_before_loading():
    with pytest.raises(ConfigError, match="stage=kto needs optim.batch_size >= 2"):
        load_config(None, ["stage=kto", "batch_size=1"])
    with pytest.raises(ConfigError, match="exo_pair needs dpo.label_smoothing > 0"):
        load_config(None, ["stage=dpo", "dpo.loss_type=exo_pair"])
    preset = Path(__file__).resolve().parents[2] / "assets/presets/cpu_dpo.yaml"
    assert load_config(preset, ["stage=rm"]).stage == "rm"  # the README's reward-model command
