#!/usr/bin/env python3
"""Generate model/canary.jsonl: >= 500 varied labelled sentences, deterministically.

Each line is {"id", "text", "expected"} with expected NEGATIVE or POSITIVE. Most items
are clear; about 8% are hard on purpose (negation, contrast) so accuracy is below 100%
and the canary sees a realistic mix of confident and unsure outputs.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SUBJECTS = [
    "The movie",
    "This film",
    "The new phone",
    "The laptop",
    "The app",
    "The latest update",
    "Our hotel room",
    "The hotel staff",
    "The service",
    "The restaurant",
    "The food",
    "Dinner",
    "The coffee",
    "The flight",
    "The airline",
    "The delivery",
    "The package",
    "The customer support team",
    "The concert",
    "The tour guide",
    "The course",
    "The teacher",
    "The game",
    "The graphics",
    "The battery",
    "The camera",
    "The keyboard",
    "The interface",
    "The setup process",
    "The soundtrack",
    "The ending",
    "The acting",
    "The book",
    "The plot",
    "Our stay",
    "The ride",
    "The driver",
    "The shoes",
    "The jacket",
    "The store",
]
POS_PRED = [
    "was excellent",
    "was absolutely wonderful",
    "is great",
    "was amazing",
    "felt fantastic",
    "was a delightful experience",
    "is fast and reliable",
    "was superb",
    "looked stunning",
    "was perfect",
    "is easy and intuitive",
    "was really enjoyable",
    "was outstanding",
    "made everyone happy",
    "was clean and comfortable",
    "is worth every penny, I recommend it",
    "was brilliant",
    "was friendly and helpful",
    "felt polished and elegant",
    "was a joy",
    "was impressive",
    "is my favorite",
    "was lovely",
    "was terrific fun",
]
NEG_PRED = [
    "was terrible",
    "was awful",
    "is bad",
    "was a disappointing mess",
    "felt slow and buggy",
    "was horrible",
    "is useless",
    "was boring and dull",
    "was the worst",
    "crashed again",
    "was rude and unhelpful",
    "was dirty and uncomfortable",
    "is overpriced and cheap",
    "was a complete waste",
    "was frustrating",
    "was confusing and clunky",
    "was a disaster",
    "left us angry",
    "was mediocre and bland",
    "failed twice",
    "was a nightmare",
    "was painful to sit through",
    "is unreliable",
    "was dreadful",
]
TAILS = [
    "",
    "",
    "",
    " today",
    " this time",
    " overall",
    " on the first day",
    " for the whole family",
    " after the update",
    " during our trip",
    " last week",
    " honestly",
    " from start to finish",
]
ENDS = [".", ".", ".", "!", "!!", ". I would go again", ". Would not repeat"]
HARD = [
    ("The movie was not good at all.", "NEGATIVE"),
    ("I expected to hate it but it was not bad.", "POSITIVE"),
    ("The food was great but the service was terrible and slow.", "NEGATIVE"),
    ("Not a disaster, just not great.", "NEGATIVE"),
    ("The battery is bad, the camera is great, the screen is great.", "POSITIVE"),
    ("I never felt happy with this laptop.", "NEGATIVE"),
    ("Hardly the worst hotel we stayed in.", "POSITIVE"),
    ("The plot was boring, yet the acting was brilliant and stunning.", "POSITIVE"),
]


def sentences(n: int = 600, seed: int = 20261123) -> list[dict[str, str]]:
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    n_hard = 0
    while len(out) < n:
        if n_hard < 48 and rng.random() < 0.08:
            text, label = HARD[n_hard % len(HARD)]
            prefix = ["", "Honestly, ", "Well, ", "To be fair, ", "In short, ", "Overall, "][
                n_hard // len(HARD)
            ]
            text = prefix + (text[0].lower() + text[1:] if prefix else text)
            n_hard += 1
        else:
            label = rng.choice(["POSITIVE", "NEGATIVE"])
            pred = rng.choice(POS_PRED if label == "POSITIVE" else NEG_PRED)
            end = rng.choice(ENDS)
            if (
                (label == "POSITIVE") != ("go again" in end)
                and "repeat" not in end
                and "again" in end
            ):
                end = "."
            if label == "POSITIVE" and "repeat" in end:
                end = "!"
            text = f"{rng.choice(SUBJECTS)} {pred}{rng.choice(TAILS)}{end}"
        if text in seen:
            continue
        seen.add(text)
        out.append({"id": f"c{len(out):04d}", "text": text, "expected": label})
    return out


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "canary.jsonl"
    items = sentences()
    out.write_text("".join(json.dumps(i, sort_keys=True) + "\n" for i in items))
    print(f"wrote {len(items)} items to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
