#!/usr/bin/env python3
"""Where key matching stands: teacher-forced argmax of the first value byte (the byte that needs
the key matched; the rest can be copied) and of the whole value, per form:

  repeat        kv_multi's repeat form: the asked pairs again as an object, value after its key
  question      kv_multi's question form: several kv_retrieval questions with short hex keys
  kv_retrieval  the InfiniteBench format (UUIDs, 3-4 pairs in 512 bytes)

  /usr/bin/python3 tools/train/probe_kv.py --ckpt tools/train/checkpoints/kvmulti/latest.pt --n 48
"""

import argparse
import os
import random
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from model import model_from_checkpoint  # noqa: E402
import tasks as T  # noqa: E402


@torch.no_grad()
def first_byte_and_whole(model, samples):
    first = whole = total = 0
    for s in samples:
        pred = model(torch.tensor([s.tokens[:-1]]))[0].argmax(-1)
        for a0, a1 in s.meta.get("a_spans", [s.a_span]):
            j = a0 + (1 if s.tokens[a0] == 32 else 0)  # the question form's answer starts with a space
            first += int(pred[j - 1] == s.tokens[j])
            whole += int(all(pred[t - 1] == s.tokens[t] for t in range(j, a1)))
            total += 1
    return first / total, whole / total, total


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--n", type=int, default=48, help="rows per form")
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--seed", default="d2")
    a = p.parse_args()
    torch.set_num_threads(1)
    model = model_from_checkpoint(a.ckpt)[0]
    model.eval()
    rng = random.Random(a.seed)
    L = a.length + 1
    forms = {
        "repeat": [T.kv_multi_sample(rng, L, p_repeat=1.0) for _ in range(a.n)],
        "question": [T.kv_multi_sample(rng, L, p_repeat=0.0) for _ in range(a.n)],
        "kv_retrieval": [T.kv_sample(rng, L) for _ in range(a.n)],
    }
    for name, samples in forms.items():
        f, w, n = first_byte_and_whole(model, samples)
        print(f"{name:12s} first value byte {f:.3f}  whole value {w:.3f}  ({n} values)")


if __name__ == "__main__":
    main()
