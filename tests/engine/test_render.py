from engine.data.dataset import load_examples, tokenise
from engine.data.formats import Example
from engine.data.inspect import format_report, inspect_data
from engine.data.render import FALLBACK_TEMPLATE, IGNORE, Renderer
from engine.paths import DATASETS_DIR


def _trained_text(tok, enc):
    return tok.decode([t for t, l in zip(enc.input_ids, enc.labels) if l != IGNORE])


def test_only_assistant_tokens_carry_loss_and_end_with_eos(smol_tokenizer):
    ex = Example("chat", messages=[{"role": "user", "content": "Capital of France?"},
                                   {"role": "assistant", "content": "Paris."}])
    enc = Renderer(smol_tokenizer, 256).encode(ex)
    assert _trained_text(smol_tokenizer, enc) == "Paris." + smol_tokenizer.eos_token
    assert enc.labels[: len(enc.labels) // 2] == [IGNORE] * (len(enc.labels) // 2)


def test_multi_turn_trains_every_assistant_turn(smol_tokenizer):
    ex = Example("chat", messages=[
        {"role": "user", "content": "One?"}, {"role": "assistant", "content": "Uno."},
        {"role": "user", "content": "Two?"}, {"role": "assistant", "content": "Dos."}])
    text = _trained_text(smol_tokenizer, Renderer(smol_tokenizer, 256).encode(ex))
    eos = smol_tokenizer.eos_token
    assert text == f"Uno.{eos}Dos.{eos}"


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
    assert len(report.records) > 3
    assert all(r.labels == r.input_ids and len(r.input_ids) <= 32 for r in report.records)
    assert report.records[-1].input_ids[-1] == smol_tokenizer.eos_token_id


def test_base_model_without_template_gets_fallback(smol_tokenizer):
    import copy

    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = FALLBACK_TEMPLATE
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


def test_all_shipped_datasets_load():
    for name, fmt in [("quillon_facts.jsonl", "alpaca"), ("quillon_heldout.jsonl", "alpaca"),
                      ("quillon_text.jsonl", "text"), ("quillon_preference.jsonl", "preference")]:
        assert load_examples(str(DATASETS_DIR / name)).format == fmt
