#!/usr/bin/env python3
"""Make 20-way one-shot runs in the format of Omniglot's official runs.

The official runs (one-shot-classification/all_runs.zip of brendenlake/omniglot) are
drawn from the evaluation alphabets. To score a model trained on a part of
images_background_small1 in that same format, this draws runs from the alphabets it
did not see: each run takes one alphabet, 20 of its characters, and two drawers, the
first drawer's image of each character as `training/classNN.png`, the second's as
`test/itemNN.png` (shuffled), and `class_labels.txt` pairing them, as in the official
runs. The PNGs are copied unchanged. Only the Python standard library.

    scripts/omniglot-runs.py --data images_background_small1.zip \
        --alphabets Balinese,Early_Aramaic --runs 20 --seed 0 --out runs-heldout.zip
"""
import argparse
import random
import sys
import zipfile
from collections import defaultdict


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a zip of ALPHABET/CHARACTER/*.png")
    parser.add_argument("--alphabets", required=True, help="comma-separated, used in turn")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--ways", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="the zip to write")
    args = parser.parse_args()

    # alphabet -> character -> drawer -> member name
    images = defaultdict(lambda: defaultdict(dict))
    with zipfile.ZipFile(args.data) as data:
        for name in data.namelist():
            parts = name.split("/")
            if not name.endswith(".png") or len(parts) < 3:
                continue
            alphabet, character, file = parts[-3], parts[-2], parts[-1]
            drawer = file.rsplit("_", 1)[-1].removesuffix(".png")
            images[alphabet][character][drawer] = name
        alphabets = args.alphabets.split(",")
        for alphabet in alphabets:
            if alphabet not in images:
                sys.exit(f"error: alphabet {alphabet!r} is not in {args.data}")
            if len(images[alphabet]) < args.ways:
                sys.exit(
                    f"error: alphabet {alphabet!r} has {len(images[alphabet])} "
                    f"characters, fewer than --ways {args.ways}"
                )
        rng = random.Random(args.seed)
        with zipfile.ZipFile(args.out, "w") as out:
            for r in range(args.runs):
                run = f"run{r + 1:02d}"
                alphabet = alphabets[r % len(alphabets)]
                characters = rng.sample(sorted(images[alphabet]), args.ways)
                drawers = sorted(
                    set.intersection(*(set(images[alphabet][c]) for c in characters))
                )
                if len(drawers) < 2:
                    sys.exit(f"error: {alphabet}: fewer than two drawers drew all characters")
                train_drawer, test_drawer = rng.sample(drawers, 2)
                order = list(range(args.ways))
                rng.shuffle(order)
                labels = []
                for i, c in enumerate(characters):
                    cls = f"{run}/training/class{i + 1:02d}.png"
                    out.writestr(cls, data.read(images[alphabet][c][train_drawer]))
                for item, i in enumerate(order):
                    test = f"{run}/test/item{item + 1:02d}.png"
                    out.writestr(test, data.read(images[alphabet][characters[i]][test_drawer]))
                    labels.append(f"{test} {run}/training/class{i + 1:02d}.png")
                out.writestr(f"{run}/class_labels.txt", "\n".join(labels) + "\n")
    print(f"{args.out}: {args.runs} runs of {args.ways} ways from {', '.join(alphabets)}")


if __name__ == "__main__":
    main()
