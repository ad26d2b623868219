"""Write synthetic support tickets as JSONL (optionally gzipped), streaming: flat memory.

    python examples/streaming_large/generate_inputs.py --rows 100000 -o /tmp/tickets_100k.jsonl.gz

Deterministic: the same arguments always give the same file. One ticket in
``--urgent-every`` mentions an urgent refund; only those reach the LLM step.
The committed ``inputs.jsonl`` is ``--rows 60 --urgent-every 20``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys

PRODUCTS = ["blender", "kettle", "toaster", "headphones", "desk lamp", "backpack", "monitor", "keyboard"]
ROUTINE = [
    "How do I reset my {p}?",
    "Can I change the delivery address for my {p}?",
    "Is the {p} available in blue?",
    "Thanks, the {p} arrived fine.",
    "Where can I find the manual for the {p}?",
    "Does the {p} come with a warranty?",
]
URGENT = [
    "URGENT: my {p} arrived broken, I want a refund today.",
    "Urgent refund request: I was charged twice for the {p}.",
    "URGENT - the {p} caught fire, refund me now please.",
]
CHANNELS = ["email", "chat", "phone", "web"]


def ticket(i: int, rng: random.Random, urgent_every: int) -> dict:
    product = rng.choice(PRODUCTS)
    urgent = i % urgent_every == 7 % urgent_every
    text = rng.choice(URGENT if urgent else ROUTINE).format(p=product)
    return {"ticket_id": f"T{i:07d}", "channel": rng.choice(CHANNELS), "text": text}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--urgent-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", default="-", help="file (.gz to compress) or - for stdout")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    if args.output == "-":
        write_rows(sys.stdout, args.rows, rng, args.urgent_every)
    else:
        opener = gzip.open if args.output.endswith(".gz") else open
        with opener(args.output, "wt", encoding="utf-8") as out:
            write_rows(out, args.rows, rng, args.urgent_every)
    return 0


def write_rows(out, rows: int, rng: random.Random, urgent_every: int) -> None:
    for i in range(rows):
        out.write(json.dumps(ticket(i, rng, urgent_every)) + "\n")


if __name__ == "__main__":
    sys.exit(main())
