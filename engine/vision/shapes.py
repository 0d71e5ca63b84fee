"""A learnable image-question set: coloured shapes on a plain background, "what colour/shape is this?".

    python -m engine.vision.shapes data/shapes --train 120 --held-out 20

Writes <out>/images/*.png, <out>/train.jsonl (LLaMA-Factory's ShareGPT layout: `<image>`
placeholders + an `images` list) and <out>/held_out.jsonl (OpenAI-style image parts), so both
layouts are exercised, and <out>/pairs.jsonl: the training questions as preference pairs for
stage=dpo (the right answer chosen, a wrong one of the same kind rejected). Answers are one word, so "correct" is a plain string check.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (235, 210, 20)}
SHAPES = ("square", "circle", "triangle")
QUESTIONS = {"colour": "What colour is the shape? Answer in one word.", "shape": "What shape is this? Answer in one word."}


def draw(colour: str, shape: str, size: int, rng: random.Random):
    """One RGB image: a shape of `colour` at a random place and size on a light grey background."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (235, 235, 235))
    d = ImageDraw.Draw(img)
    side = rng.randint(size // 2, size - 4)
    x, y = rng.randint(0, size - side), rng.randint(0, size - side)
    fill = COLOURS[colour]
    if shape == "square":
        d.rectangle([x, y, x + side - 1, y + side - 1], fill=fill)
    elif shape == "circle":
        d.ellipse([x, y, x + side - 1, y + side - 1], fill=fill)
    else:
        d.polygon([(x + side // 2, y), (x, y + side - 1), (x + side - 1, y + side - 1)], fill=fill)
    return img


def wrong_answer(answer: str, rng: random.Random) -> str:
    """Another answer of the same kind (a colour for a colour, a shape for a shape)."""
    pool = list(COLOURS) if answer in COLOURS else list(SHAPES)
    return rng.choice([a for a in pool if a != answer])


def write_shapes(out: str | Path, train: int = 120, held_out: int = 20, size: int = 32, seed: int = 0) -> dict:
    """Write the set; returns {"train": path, "held_out": path, "pairs": path}."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    files, pairs = {}, []
    wrong_rng = random.Random(seed + 1)  # its own stream: the images and questions stay those of earlier versions
    for split, n in (("train", train), ("held_out", held_out)):
        rows = []
        for i in range(n):
            colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
            ask = "colour" if i % 2 == 0 else "shape"
            answer = colour if ask == "colour" else shape
            name = f"images/{split}-{i}.png"
            draw(colour, shape, size, rng).save(out / name)
            if split == "train":
                rows.append({"conversations": [{"from": "human", "value": f"<image>{QUESTIONS[ask]}"},
                                               {"from": "gpt", "value": answer}], "images": [name]})
                pairs.append({"prompt": f"<image>{QUESTIONS[ask]}", "chosen": answer,
                              "rejected": wrong_answer(answer, wrong_rng), "images": [name]})
            else:
                rows.append({"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTIONS[ask]}]},
                                          {"role": "assistant", "content": answer}], "images": [name]})
        path = out / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files[split] = path
    files["pairs"] = out / "pairs.jsonl"
    files["pairs"].write_text("".join(json.dumps(r) + "\n" for r in pairs))
    return files


def score(model_ref: str, held_out: str | Path) -> tuple[int, int]:
    """(correct, total) greedy one-word answers of `model_ref` (a run or VLM folder) on a held-out file."""
    from engine.chat import ChatSession
    from engine.vision.data import load_vision_examples

    session = ChatSession(model_ref, temperature=0, max_tokens=8, repeat_penalty=1.0)
    correct = total = 0
    for ex in load_vision_examples(str(held_out)).examples:
        question = "".join(p["text"] for p in ex.messages[0]["content"] if p["type"] == "text")
        expected = "".join(p["text"] for p in ex.messages[1]["content"] if p["type"] == "text").strip().lower()
        session.reset()
        session.attach_image(ex.images[0])
        answer = session.ask(question).strip().lower()
        correct += int(answer.startswith(expected))
        total += 1
    return correct, total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--train", type=int, default=120)
    p.add_argument("--held-out", type=int, default=20)
    p.add_argument("--size", type=int, default=32, help="Image side in pixels.")
    p.add_argument("--score", metavar="MODEL", help="Instead: score MODEL on <out>/held_out.jsonl.")
    args = p.parse_args(argv)
    if args.score:
        c, t = score(args.score, Path(args.out) / "held_out.jsonl")
        print(f"{args.score}: {c}/{t} held-out answers correct")
        return 0
    for split, path in write_shapes(args.out, args.train, args.held_out, args.size).items():
        print(f"{split}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
