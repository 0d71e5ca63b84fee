"""Online RL (stage=grpo, stage=rloo) on a tiny random Llama: each stage trains and logs its rewards and
sampled answers, every reward source works (built-ins, a Python file, a reward-model run) with weights,
a bad reward fails clearly (before loading, or mid-run as an error event with the checkpoint intact),
a resumed run matches an uninterrupted one, and the planner counts sampling memory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.events import SCHEMA
from tests.conftest import write_jsonl
from tests.engine.run_helpers import train

PROMPTS = [{"prompt": f"Say the code for item {i}.", "answer": f"Code {i}"} for i in range(8)]

REWARD_FILE = '''
def short(prompts, completions, **kwargs):
    """Fewer characters, more reward."""
    return [-len(c[-1]["content"]) / 50 for c in completions]


def wrong_length(prompts, completions, **kwargs):
    return [0.0]


def broken(prompts, completions, answer, **kwargs):
    return [len(c) / 0 for c in completions]
'''


@pytest.fixture(scope="module")
def rl_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("rl-data")
    (root / "my_rewards.py").write_text(REWARD_FILE)
    return write_jsonl(root / "prompts.jsonl", PROMPTS), root / "my_rewards.py"


def rl_cfg(model, data, out, stage="grpo", *extra):
    return load_config(None, [f"model={model}", f"data={data}", f"output_dir={out}", f"stage={stage}", "method=lora",
                              "batch_size=4", "max_len=64", "lr=5e-3", "optim.scheduler=constant", "lora.dropout=0",
                              "train.backend=hf", "train.logging_steps=1", "rl.num_generations=2",
                              "rl.max_completion_len=6", "quant.compute_dtype=fp32", *extra])


def steps(events):
    return [e for e in events if e["type"] == "step"]


@pytest.fixture(scope="module")
def grpo_run(tiny_model_dir, rl_files, tmp_path_factory):
    """4 GRPO steps with three weighted rewards (built-in, Python file, built-in with options), checkpoint at 2."""
    data, py = rl_files
    out = tmp_path_factory.mktemp("grpo") / "run"
    cfg = rl_cfg(tiny_model_dir, data, out, "grpo", "max_steps=4", "train.save_steps=2",
                 f"rl.rewards=[length, '0.5*{py}:short', {{reward: regex, pattern: 'Code', weight: 2}}]")
    return out, *train(cfg)


def test_grpo_trains_and_logs_rewards_and_completions(grpo_run):
    out, result, events, _ = grpo_run
    assert result["status"] == "completed" and (out / "adapter" / "adapter_config.json").is_file()
    assert all(k in e for e in events for k in SCHEMA[e["type"]])
    metrics = steps(events)[-1]["metrics"]
    for key in ("reward", "reward_std", "kl", "completion_len", "reward_length", "reward_short", "reward_regex"):
        assert key in metrics, key
    comps = [e for e in events if e["type"] == "completions"]
    assert len(comps) == 4 and len(comps[-1]["samples"]) == 4
    sample = comps[-1]["samples"][0]
    assert sample["prompt"].startswith("Say the code") and set(sample["rewards"]) == {"length", "short", "regex"}
    # the logged total is the weighted sum of the per-reward means
    s = steps(events)[0]["metrics"]
    assert s["reward"] == pytest.approx(s["reward_length"] + 0.5 * s["reward_short"] + 2 * s["reward_regex"], abs=1e-4)


def test_rloo_trains(tiny_model_dir, rl_files, tmp_path):
    data, _ = rl_files
    result, events, _ = train(rl_cfg(tiny_model_dir, data, tmp_path / "rloo", "rloo", "max_steps=2",
                                     "rl.rewards=[contains_answer, repetition]"))
    assert result["status"] == "completed" and events[0]["stage"] == "rloo"
    assert {"reward_contains_answer", "reward_repetition"} <= set(steps(events)[-1]["metrics"])


def test_resume_matches_uninterrupted(grpo_run, tmp_path):
    """Resume from step 2 of the GRPO run: steps 3-4 sample the same answers and end with the same adapter."""
    import torch
    from safetensors.torch import load_file

    out, _, events, _ = grpo_run
    copy = tmp_path / "resumed"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "adapter")
    shutil.rmtree(copy / "checkpoints" / "step-4")
    cfg = load_config(copy / "config.yaml", [f"output_dir={copy}"])
    result, resumed, _ = train(cfg, resume="latest")
    assert result["status"] == "completed" and resumed[0]["resumed_from"].endswith("step-2")
    want = [e["metrics"]["reward"] for e in steps(events)[2:]]
    got = [e["metrics"]["reward"] for e in steps(resumed)]
    assert got == pytest.approx(want, abs=1e-5)
    a = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(copy / "adapter" / "adapter_model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_resume_with_other_rl_settings_is_refused(grpo_run, tmp_path):
    """rl.* is part of the run: resuming with another KL weight names the change; display settings may change."""
    from engine.errors import EdgetuneError

    out = grpo_run[0]
    copy = tmp_path / "other"
    shutil.copytree(out, copy)
    cfg = load_config(copy / "config.yaml", [f"output_dir={copy}", "rl.beta=0.5"])
    with pytest.raises(EdgetuneError, match=r"stage_settings: .*'beta': 0.04.*'beta': 0.5"):
        train(cfg, resume="latest")
    from engine.train.recipes.base import stage_settings

    a = load_config(copy / "config.yaml", ["rl.log_completions=0"])
    assert stage_settings(a) == stage_settings(load_config(copy / "config.yaml"))


def test_long_prompts_lose_their_start_or_are_dropped(tiny_model_dir, tmp_path):
    """sequence.max_prompt_len applies to RL prompts: older turns go first, then the start of the last message;
    a prompt that cannot fit beside the template is dropped and counted."""
    from transformers import AutoTokenizer

    from engine.data.prompts import fit_prompt, prompt_ids, rl_prompt_limit

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    question = [{"role": "user", "content": "alpha beta gamma delta " * 20 + "what is the code?"}]
    limit = len(prompt_ids(tok, question)) - 10
    fitted, cut = fit_prompt(tok, question, limit)
    assert cut and len(prompt_ids(tok, fitted)) <= limit and fitted[0]["content"].endswith("what is the code?")
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "old question " * 30},
            {"role": "assistant", "content": "old answer " * 30}, {"role": "user", "content": "new question?"}]
    fitted, cut = fit_prompt(tok, chat, len(prompt_ids(tok, [chat[0], chat[3]])))
    assert cut and fitted == [chat[0], chat[3]]
    assert fit_prompt(tok, question, 3) is None
    assert fit_prompt(tok, question, 10_000) == (question, False)
    assert rl_prompt_limit("auto", 64, 6) == 58 and rl_prompt_limit(20, 64, 6) == 20

    data = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "word " * 200 + "Say the code.", "answer": "Code 1"},
                                               *PROMPTS[:4]])
    result, events, _ = train(rl_cfg(tiny_model_dir, data, tmp_path / "cut", "grpo", "max_steps=1",
                                     "rl.rewards=[length]", "sequence.max_prompt_len=40"))
    assert result["status"] == "completed"
    warning = [e for e in events if e["type"] == "warning" and "truncated" in e.get("message", "")]
    assert warning and warning[0]["message"].startswith("1 record(s) truncated")


def test_eval_scores_greedy_replies_with_the_run_rewards(grpo_run, rl_files, capsys):
    """`engine eval RL_RUN --answers` scores base and tuned replies with the run's rl.rewards; --reward picks others."""
    from engine.cli.main import main

    out = grpo_run[0]
    data, _ = rl_files
    assert main(["eval", str(out), "--data", str(data), "--answers", "--max-tokens", "4", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)["reply_rewards"]
    assert set(r["mean"]) == {"base", "tuned"} and r["replies"] == len(PROMPTS)
    assert set(r["per_reward"]["tuned"]) == {"length", "short", "regex"}
    tuned = r["per_reward"]["tuned"]
    assert r["mean"]["tuned"] == pytest.approx(tuned["length"] + 0.5 * tuned["short"] + 2 * tuned["regex"])
    assert main(["eval", str(out), "--data", str(data), "--reward", "contains_answer", "--max-tokens", "4"]) == 0
    assert "reward of the greedy replies (['contains_answer']" in capsys.readouterr().out


def test_reward_model_run_as_reward(tiny_model_dir, rl_files, tmp_path):
    """SFT -> RM -> GRPO in miniature: a stage=rm run scores the sampled answers with its own score head."""
    data, _ = rl_files
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": p["prompt"], "chosen": p["answer"] + ".",
                                                    "rejected": "I do not know, sorry."} for p in PROMPTS])
    rm = load_config(None, [f"model={tiny_model_dir}", f"data={pairs}", f"output_dir={tmp_path / 'rm'}", "stage=rm",
                            "method=lora", "batch_size=4", "max_len=64", "max_steps=2", "train.backend=hf"])
    assert train(rm)[0]["status"] == "completed"
    result, events, _ = train(rl_cfg(tiny_model_dir, data, tmp_path / "grpo", "grpo", "max_steps=1",
                                     f"rl.rewards=[rm:{tmp_path / 'rm'}]"))
    assert result["status"] == "completed" and "reward_rm_rm" in steps(events)[-1]["metrics"]


@pytest.mark.parametrize("rewards, message", [
    ("[]", "rl.rewards is empty"),
    ("[lenght]", "unknown reward 'lenght'"),
    ("[missing.py:fn]", "'missing.py' does not exist"),
    ("['{py}:nope']", "has no function 'nope'"),
    ("[{{reward: length, targte: 3}}]", "has no option targte"),
    ("['x*length']", "not a number"),
    ("[rm:{root}]", "not a run folder"),
])
def test_bad_reward_specs_fail_before_loading(tiny_model_dir, rl_files, tmp_path, rewards, message):
    data, py = rl_files
    text = rewards.format(py=py, root=tmp_path)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        cfg = rl_cfg(tiny_model_dir, data, tmp_path / "bad", "grpo", f"rl.rewards={text}")
        from engine.rewards import build_rewards

        build_rewards(cfg)


def test_rl_settings_are_checked(tiny_model_dir, rl_files, tmp_path):
    data, _ = rl_files
    with pytest.raises(ConfigError, match="multiple of rl.num_generations"):
        rl_cfg(tiny_model_dir, data, tmp_path / "x", "grpo", "rl.num_generations=3", "rl.rewards=[length]")
    with pytest.raises(ConfigError, match="rl.temperature must be > 0"):
        rl_cfg(tiny_model_dir, data, tmp_path / "x", "grpo", "rl.temperature=0", "rl.rewards=[length]")
    with pytest.raises(ConfigError, match="option of stage=grpo or stage=rloo"):
        load_config(None, ["stage=sft", "rl.beta=0.1"])


@pytest.mark.parametrize("fn, says", [("wrong_length", "returned 1 values for 4 completions"),
                                      ("broken", "raised ZeroDivisionError")])
def test_failing_reward_stops_with_error_naming_it(tiny_model_dir, rl_files, tmp_path, fn, says):
    from engine.train.recipes.base import RunFailed

    data, py = rl_files
    cfg = rl_cfg(tiny_model_dir, data, tmp_path / "run", "grpo", "max_steps=2", f"rl.rewards=['{py}:{fn}']")
    with pytest.raises(RunFailed, match=fn):
        train(cfg)
    events = [json.loads(x) for x in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    error = next(e for e in events if e["type"] == "error")
    assert error["kind"] == "reward" and f"'{fn}'" in error["message"] and says in error["message"]
    assert "step 1" in error["message"] and "resume" in error["hint"]
    if fn == "broken":
        assert "my_rewards.py:" in error["message"]  # the user's line, from the traceback's last frame
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "failed"


def test_prompt_data_is_recognised(smol_tokenizer, rl_files):
    from engine.data.inspect import inspect_data
    from engine.train.recipes import stages_for_kind

    data, _ = rl_files
    report = inspect_data(str(data), smol_tokenizer, max_len=64)
    assert report.kind == "prompt" and report.records == 8 and report.trained_tokens == 0
    assert "column answer" in report.to_dict()["sample"]
    assert stages_for_kind("prompt") == ["grpo", "rloo"]


def test_sft_refuses_prompt_data(tiny_model_dir, rl_files, tmp_path):
    from engine.errors import DataError

    data, _ = rl_files
    cfg = load_config(None, [f"model={tiny_model_dir}", f"data={data}", f"output_dir={tmp_path / 'sft'}",
                             "method=lora", "max_steps=1", "train.backend=hf"])
    with pytest.raises(Exception, match="stage=grpo or stage=rloo"):
        train(cfg)


def test_planner_counts_sampling_and_reference(tiny_model_dir, rl_files, tmp_path):
    from engine.plan import plan_memory

    data, _ = rl_files
    four = plan_memory(rl_cfg(tiny_model_dir, data, tmp_path, "grpo", "rl.rewards=[length]"), "cuda", 8.0)
    eight = plan_memory(rl_cfg(tiny_model_dir, data, tmp_path, "grpo", "rl.rewards=[length]", "batch_size=8"), "cuda", 8.0)
    assert four.breakdown["sampling KV cache"] > 0
    assert eight.breakdown["sampling KV cache"] == pytest.approx(2 * four.breakdown["sampling KV cache"], rel=0.01)
    full = plan_memory(rl_cfg(tiny_model_dir, data, tmp_path, "grpo", "rl.rewards=[length]", "method=full"), "cuda", 8.0)
    assert "reference model" in full.breakdown and "reference model" not in four.breakdown
    no_kl = plan_memory(rl_cfg(tiny_model_dir, data, tmp_path, "grpo", "rl.rewards=[length]", "method=full",
                               "rl.beta=0"), "cuda", 8.0)
    assert "reference model" not in no_kl.breakdown


def test_rl_run_merges_like_sft(grpo_run, tmp_path):
    from engine.train.merge import merge_run

    out, *_ = grpo_run
    merged = merge_run(out, tmp_path / "merged")
    assert (merged / "config.json").is_file() and list(merged.glob("*.safetensors"))
