"""Read records from a data file, each tagged with where it came from.

Readers are a registry keyed by file suffix; each yields `(location, record)`
where location is `file:line` (or `file:row N` for columnar files) so an error
message can send the user straight to the bad record.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable, Iterator

from engine.errors import DataError

Reader = Callable[[Path], Iterator[tuple[str, object]]]
READERS: dict[str, Reader] = {}


class BadRecord(Exception):
    """A record that cannot be parsed; `location` says where it is."""

    def __init__(self, location: str, message: str):
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


def reader(*suffixes: str):
    def deco(fn: Reader) -> Reader:
        for s in suffixes:
            READERS[s] = fn
        return fn

    return deco


@reader(".jsonl", ".ndjson")
def read_jsonl(path: Path) -> Iterator[tuple[str, object]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            loc = f"{path}:{lineno}"
            try:
                yield loc, json.loads(line)
            except json.JSONDecodeError as e:
                yield loc, BadRecord(loc, f"not valid JSON ({e.msg} at column {e.colno})")


@reader(".json")
def read_json(path: Path) -> Iterator[tuple[str, object]]:
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if not stripped.startswith("["):
        # Some tools write JSON lines into a .json file.
        if stripped.startswith("{") and "\n{" in stripped:
            yield from read_jsonl(path)
            return
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg}).") from None
        if isinstance(data, dict):
            for key in ("data", "train", "records", "examples"):
                if isinstance(data.get(key), list):
                    for i, rec in enumerate(data[key]):
                        yield f"{path}:{key}[{i}]", rec
                    return
        raise DataError(f"{path}: expected a JSON list of records (or JSON lines), got a {type(data).__name__}.")
    # Walk the array element by element so each record keeps its line number.
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            raise DataError(f"{path}: the JSON list is not closed with ']'.")
        if text[pos] == "]":
            return
        lineno = text.count("\n", 0, pos) + 1
        try:
            rec, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); fix the file and retry.") from None
        yield f"{path}:{lineno}", rec


@reader(".csv", ".tsv")
def read_csv(path: Path) -> Iterator[tuple[str, object]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rdr = csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ",")
        for row in rdr:
            yield f"{path}:{rdr.line_num}", dict(row)


@reader(".parquet")
def read_parquet(path: Path) -> Iterator[tuple[str, object]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:
        raise DataError(f"{path}: cannot read as Parquet ({e}).") from None
    for i, row in enumerate(table.to_pylist()):
        yield f"{path}:row {i + 1}", row


def read_saved_dataset(path: Path) -> Iterator[tuple[str, object]]:
    """A folder written by `datasets.Dataset.save_to_disk` (a DatasetDict uses its 'train' split)."""
    from datasets import DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(path))
    except Exception as e:
        raise DataError(f"{path}: not a dataset saved with datasets.save_to_disk ({e}).") from None
    if isinstance(ds, DatasetDict):
        ds = ds["train"] if "train" in ds else next(iter(ds.values()))
    for i, row in enumerate(ds):
        yield f"{path}:row {i + 1}", row


def read_records(path: str | Path) -> Iterator[tuple[str, object]]:
    """Yield `(location, record)` for every record in the file or saved-dataset folder."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"Data file '{path}' not found. Set data=<file> (.jsonl, .json, .csv, .parquet or a saved dataset folder).")
    if path.is_dir():
        yield from read_saved_dataset(path)
        return
    fn = READERS.get(path.suffix.lower())
    if fn is None:
        raise DataError(f"Data file '{path}' has an unknown type '{path.suffix}'. Supported: {', '.join(sorted(READERS))} or a saved dataset folder.")
    try:
        yield from fn(path)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text. Save it as UTF-8 and retry.") from None
