import csv
import json

import pytest

from engine.data.dataset import load_examples, split_eval
from engine.errors import DataError
from tests.conftest import write_jsonl


@pytest.mark.parametrize("record, fmt", [
    ({"instruction": "Hi", "input": "", "output": "Hello"}, "alpaca"),
    ({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}, "sharegpt"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}, "messages"),
    ({"text": "Some document."}, "text"),
    ({"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"}, "preference"),
])
def test_formats_are_detected(tmp_path, record, fmt):
    rep = load_examples(write_jsonl(tmp_path / "d.jsonl", [record, record]))
    assert rep.format == fmt and len(rep.examples) == 2


def test_alpaca_becomes_user_and_assistant_turns_with_system_prompt(tmp_path):
    rep = load_examples(write_jsonl(tmp_path / "d.jsonl", [{"instruction": "Add", "input": "1+1", "output": "2"}]),
                        system_prompt="Be brief.")
    assert rep.examples[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Add\n\n1+1"},
        {"role": "assistant", "content": "2"},
    ]


def test_column_mapping(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "Why?", "a": "Because."}])
    rep = load_examples(path, columns={"instruction": "q", "output": "a"})
    assert rep.format == "alpaca" and rep.examples[0].messages[-1]["content"] == "Because."


def test_bad_record_names_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c"\n{"instruction": "d", "output": "e"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: not valid JSON.*on_error=skip"):
        load_examples(path)
    rep = load_examples(path, on_error="skip")
    assert len(rep.examples) == 2 and rep.skipped[0][0].endswith("d.jsonl:2")


def test_missing_field_names_the_field(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": ""}])
    with pytest.raises(DataError, match=r"d.jsonl:2: field 'output' is missing or empty"):
        load_examples(path)


def test_unknown_shape_suggests_column_mapping(tmp_path):
    with pytest.raises(DataError, match=r"cannot tell the format.*data.columns"):
        load_examples(write_jsonl(tmp_path / "d.jsonl", [{"question": "a", "answer": "b"}]))


def test_empty_dataset_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DataError, match="no usable records"):
        load_examples(path)
    path.write_text('{"instruction": "x"}\n')
    with pytest.raises(DataError, match="no usable records.*skipped"):
        load_examples(path, format="alpaca", on_error="skip")


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_examples(tmp_path / "nope.jsonl")
    (tmp_path / "d.xml").write_text("<x/>")
    with pytest.raises(DataError, match="unknown type '.xml'"):
        load_examples(tmp_path / "d.xml")


def test_json_array_keeps_line_numbers(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n {"instruction": "a", "output": "b"},\n {"instruction": "c", "output": null}\n]\n')
    with pytest.raises(DataError, match=r"d.json:3: field 'output'"):
        load_examples(path)


def test_csv_parquet_and_saved_dataset(tmp_path):
    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(3)]
    with (tmp_path / "d.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["instruction", "output"])
        w.writeheader()
        w.writerows(rows)
    assert len(load_examples(tmp_path / "d.csv").examples) == 3

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    assert load_examples(tmp_path / "d.parquet").format == "alpaca"

    from datasets import Dataset

    Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    assert len(load_examples(tmp_path / "saved").examples) == 3


def test_conversation_without_assistant_is_rejected(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(DataError, match="no assistant turn"):
        load_examples(path)


def test_split_is_deterministic():
    items = list(range(20))
    a = split_eval(items, 0.2, seed=1)
    assert a == split_eval(items, 0.2, seed=1)
    assert len(a[1]) == 4 and sorted(a[0] + a[1]) == items


def test_skip_also_skips_an_unrecognisable_first_record(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "a"}, {"instruction": "b", "output": "c"}])
    with pytest.raises(DataError, match=r"d.jsonl:1: cannot tell the format"):
        load_examples(path)
    rep = load_examples(path, on_error="skip")
    assert rep.format == "alpaca" and len(rep.examples) == 1
    assert rep.skipped[0][0].endswith("d.jsonl:1") and "cannot tell the format" in rep.skipped[0][1]
