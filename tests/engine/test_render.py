from engine.data.dataset import load_examples, tokenise
from engine.data.formats import Example
from engine.data.inspect import format_report, inspect_data
import copy

import pytest

from engine.data.chat_templates import BUILTIN_TEMPLATES
from engine.data.render import IGNORE, Renderer, ensure_chat_template
from engine.errors import DataError
from engine.paths import DATASETS_DIR


def _trained_text(tok, enc):
    return tok.decode([t for t, l in zip(enc.input_ids, enc.labels) if l != IGNORE])


def test_only_assistant_tokens_carry_loss_and_end_with_eos(smol_tokenizer):
    ex = Example("chat", messages=[{"role": "user", "content": "Capital of France?"},
                                   {"role": "assistant", "content": "Paris."}])
    enc = Renderer(smol_tokenizer, 256).encode(ex)
    assert _trained_text(smol_tokenizer, enc) == "Paris." + smol_tokenizer.eos_token
    assert enc.labels[: len(enc.labels) // 2] == [IGNORE] * (len(enc.labels) // 2)


TWO_TURNS = [{"role": "system", "content": "Be brief."},
             {"role": "user", "content": "One?"}, {"role": "assistant", "content": "Uno."},
             {"role": "user", "content": "Two?"}, {"role": "assistant", "content": "Dos."}]


def test_multi_turn_trains_every_assistant_turn(smol_tokenizer):
    text = _trained_text(smol_tokenizer, Renderer(smol_tokenizer, 256).encode(Example("chat", messages=TWO_TURNS)))
    eos = smol_tokenizer.eos_token
    assert text == f"Uno.{eos}Dos.{eos}"


def test_multi_turn_label_mask_position_by_position(smol_tokenizer):
    """Labels equal the ids exactly on each answer and its <|im_end|>; -100 on everything else."""
    enc = Renderer(smol_tokenizer, 256).encode(Example("chat", messages=TWO_TURNS))
    tok = smol_tokenizer
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    expected_ids, expected_labels = [], []
    for m in TWO_TURNS:
        head = ids(f"<|im_start|>{m['role']}\n")
        body = ids(m["content"]) + [tok.convert_tokens_to_ids("<|im_end|>")]
        tail = ids("\n")
        expected_ids += head + body + tail
        trained = m["role"] == "assistant"
        expected_labels += [IGNORE] * len(head) + (body if trained else [IGNORE] * len(body)) + [IGNORE] * len(tail)
    assert enc.input_ids == expected_ids
    assert enc.labels == expected_labels


def test_loss_on_all_trains_every_chat_token(smol_tokenizer):
    enc = Renderer(smol_tokenizer, 256, loss_on="all").encode(Example("chat", messages=TWO_TURNS))
    assert enc.labels == enc.input_ids


def test_truncation_inside_a_user_turn_ends_at_the_last_answer(smol_tokenizer):
    """A cut in a later user turn must not put a trained EOS there: the record ends after answer one."""
    messages = [{"role": "user", "content": "One?"}, {"role": "assistant", "content": "Uno."},
                {"role": "user", "content": "long question " * 40}, {"role": "assistant", "content": "Dos."}]
    full = Renderer(smol_tokenizer, 10**6).encode(Example("chat", messages=messages))
    first_answer_end = max(i for i, l in enumerate(full.labels[:40]) if l != IGNORE) + 1
    enc = Renderer(smol_tokenizer, first_answer_end + 20).encode(Example("chat", messages=messages))
    assert enc.truncated and len(enc.input_ids) == first_answer_end
    assert enc.input_ids == full.input_ids[:first_answer_end]
    assert enc.labels[-1] == enc.input_ids[-1] == smol_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert _trained_text(smol_tokenizer, enc) == "Uno.<|im_end|>"


def test_truncation_keeps_eos_and_is_counted(smol_tokenizer):
    ex = Example("chat", messages=[{"role": "user", "content": "Tell me a story."},
                                   {"role": "assistant", "content": "word " * 200}])
    report = tokenise([ex], smol_tokenizer, max_len=64)
    enc = report.records[0]
    assert report.truncated == 1 and len(enc.input_ids) == 64
    assert enc.input_ids[-1] == smol_tokenizer.eos_token_id and enc.labels[-1] == smol_tokenizer.eos_token_id


def test_record_with_no_answer_left_after_truncation_is_dropped(smol_tokenizer):
    ex = Example("chat", messages=[{"role": "user", "content": "long " * 200}, {"role": "assistant", "content": "ok"}])
    report = tokenise([ex], smol_tokenizer, max_len=32)
    assert report.dropped == 1 and not report.records


def test_raw_text_trains_every_token_in_windows(smol_tokenizer):
    report = tokenise([Example("text", text="alpha beta gamma " * 50)], smol_tokenizer, max_len=32)
    assert len(report.records) > 3 and report.split == 1 and report.truncated == 0
    assert all(r.labels == r.input_ids and len(r.input_ids) <= 32 for r in report.records)
    assert report.records[-1].input_ids[-1] == smol_tokenizer.eos_token_id


@pytest.mark.parametrize("extra", [-1, 0, 1, 2])
def test_raw_text_windows_predict_every_token_once_eos_included(smol_tokenizer, extra):
    """Windows share their boundary token, so no token (the final EOS above all) falls out of training,
    also when the text is one token longer than a multiple of max_len."""
    max_len = 20
    one = smol_tokenizer("a", add_special_tokens=False)["input_ids"]
    n = 3 * max_len + extra - 1  # text tokens; + EOS
    text = "a" * n
    ids = smol_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(one) == 1 and len(ids) <= n  # runs of 'a' may merge: use the real ids below
    all_ids = ids + [smol_tokenizer.eos_token_id]
    windows = tokenise([Example("text", text=text)], smol_tokenizer, max_len=max_len).records
    predicted = []  # a causal LM predicts positions 1.. of each window
    for w in windows:
        assert 2 <= len(w.input_ids) <= max_len
        predicted += w.labels[1:]
    assert predicted == all_ids[1:]
    assert windows[-1].input_ids[-1] == smol_tokenizer.eos_token_id


def test_base_model_without_template_refuses_chat_and_names_the_fix(smol_tokenizer):
    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = None
    ensure_chat_template(tok)  # no guessing
    ex = Example("chat", messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
    with pytest.raises(DataError, match=r"no chat template.*model.chat_template=<name>.*plain, chatml, llama3"):
        Renderer(tok, 128).encode(ex)
    assert Renderer(tok, 128).encode(Example("text", text="Raw text needs no template."))  # still trains


def test_named_builtin_template_is_used(smol_tokenizer):
    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = None
    ensure_chat_template(tok, "plain")
    assert tok.chat_template == BUILTIN_TEMPLATES["plain"]
    ex = Example("chat", messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
    enc = Renderer(tok, 128).encode(ex)
    assert "### Assistant:" in enc.text and _trained_text(tok, enc) == "Hello" + tok.eos_token


def test_inspect_report_on_the_shipped_dataset(smol_tokenizer):
    report = inspect_data(str(DATASETS_DIR / "quillon_facts.jsonl"), smol_tokenizer, max_len=56)
    assert report.format == "alpaca" and report.records == 40
    s = report.stats()
    assert s["min"] <= s["median"] <= s["p95"] <= s["max"]
    assert report.over_max_len == sum(1 for n in report.lengths if n > 56) > 0
    text = format_report(report)
    assert "[[The Quillon Q7 is made by Brightmoss Labs.<|im_end|>]]" in text
    assert "<|im_start|>user" in text


def test_inspect_refuses_data_that_max_len_empties(smol_tokenizer):
    with pytest.raises(DataError, match=r"all 40 record\(s\) were dropped at max_len=24.*Raise max_len"):
        inspect_data(str(DATASETS_DIR / "quillon_facts.jsonl"), smol_tokenizer, max_len=24)


def test_inspect_names_the_sample_it_shows(smol_tokenizer):
    report = inspect_data(str(DATASETS_DIR / "quillon_facts.jsonl"), smol_tokenizer, max_len=256, sample_index=3)
    assert "sample 4 (" in format_report(report)


def test_all_shipped_datasets_load():
    for name, fmt in [("quillon_facts.jsonl", "alpaca"), ("quillon_heldout.jsonl", "alpaca"),
                      ("quillon_text.jsonl", "text"), ("quillon_preference.jsonl", "preference")]:
        assert load_examples(str(DATASETS_DIR / name)).format == fmt
