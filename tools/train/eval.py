#!/usr/bin/env python3
"""Evaluate a checkpoint in torch.

1. Exact match per task on N fresh samples at a given length, by greedy decoding with a
   KV cache (prompt, then one token at a time until EOS), the answer compared byte for byte.
   Teacher-forced exact match is printed beside it (the two must agree).
2. The chunk signal: a long context cut into C chunks (one holds the needle / the asked
   key; distractor needles with other names sit in other chunks); every chunk is followed
   by the same query; is the needle chunk's mean query NLL the lowest?

  /usr/bin/python3 tools/train/eval.py --ckpt tools/train/checkpoints/latest.pt --length 512 --n 50
"""

import argparse
import json
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from model import model_from_checkpoint  # noqa: E402
import tasks as T  # noqa: E402
from train import teacher_forced_metrics  # noqa: E402


@torch.no_grad()
def greedy(model, prompt, max_new):
    cache = model.new_cache()
    logits = model(torch.tensor([prompt]), cache)
    out = []
    for _ in range(max_new):
        nxt = int(logits[0, -1].argmax())
        out.append(nxt)
        if nxt == T.EOS_ID:
            break
        logits = model(torch.tensor([[nxt]]), cache)
    return out


def greedy_eval(model, task, length, n, seed):
    rng = random.Random(f"greedy-{seed}-{task}-{length}")
    samples = [T.task_sample(rng, task, length + 1) for _ in range(n)]
    exact = byte_ok = byte_n = 0
    examples = []
    for s in samples:
        a0, a1 = s.a_span
        want = s.tokens[a0:a1]
        got = greedy(model, s.tokens[:a0], len(want) + 8)
        exact += int(got == want)
        byte_ok += sum(1 for i, w in enumerate(want) if i < len(got) and got[i] == w)
        byte_n += len(want)
        if len(examples) < 3:
            examples.append((bytes(t for t in want if t < 256).decode(), bytes(t for t in got if t < 256).decode(errors="replace")))
    tf = teacher_forced_metrics(model, samples, length)
    return {"em": exact / n, "byte_acc": byte_ok / byte_n, "tf_em": tf["em"], "examples": examples}


# ------------------------------------------------------------------ chunk signal

def query_tokens(question, answer_prefix):
    return list(("\n\n" + question + "\n" + answer_prefix).encode())


def chunk_trial(model, task, rng, n_chunks, window, instruction_mode):
    """Returns the rank (0 = best) of the needle chunk by mean query NLL."""
    if task == "kv_retrieval":
        instr = T.KV_INSTRUCTION if instruction_mode else ""
        probe_q = T.kv_question("0" * 36)
        head = (instr + "\n\n") if instr else ""
        cbytes = window - 1 - len(head) - len(query_tokens(probe_q, T.KV_ANSWER_PREFIX))
        pair_len = 79
        n_pairs = n_chunks * cbytes // (pair_len + 2) + 2
        pairs = [(T.uuid4(rng), T.uuid4(rng)) for _ in range(n_pairs)]
        text = "{" + ", ".join(T.kv_pair_text(k, v) for k, v in pairs) + "}"
        chunks = [text[i * cbytes:(i + 1) * cbytes] for i in range(n_chunks)]
        cands = [(ci, k) for k, v in pairs for ci, c in enumerate(chunks) if T.kv_pair_text(k, v) in c]
        target, key = rng.choice(cands)
        question, prefix = T.kv_question(key), T.KV_ANSWER_PREFIX
    else:
        nd = 5 if task == "passkey" else 10
        canonical = T.CANONICAL_PASSKEY if task == "passkey" else T.CANONICAL_NUMBER
        instr = T.PASSKEY_INSTRUCTION if instruction_mode else ""
        head = (instr + "\n\n") if instr else ""
        (nname, qname), dnames = T.pick_names(rng, canonical, rng.randint(0, 3), 0.5)
        question, prefix = f"What is the {qname}?", f"The {qname} is"
        cbytes = window - 1 - len(head) - len(query_tokens(question, prefix))
        target = rng.randrange(n_chunks)
        per_chunk = [[] for _ in range(n_chunks)]
        per_chunk[target].append(T.needle_text(nname, T.digits(rng, nd)))
        for dn in dnames:
            per_chunk[rng.randrange(n_chunks)].append(T.needle_text(dn, T.digits(rng, nd)))
        chunks = [T.filler_context(rng, cbytes, per_chunk[i], ragged=True) for i in range(n_chunks)]
    q = query_tokens(question, prefix)
    rows = []
    for c in chunks:
        rows.append([T.BOS_ID] + list(head.encode()) + list(c.encode()) + q)
    L = max(len(r) for r in rows)
    x = torch.full((len(rows), L), T.EOS_ID, dtype=torch.long)
    for i, r in enumerate(rows):
        x[i, :len(r)] = torch.tensor(r)
    scores = []
    with torch.no_grad():
        for i in range(0, len(rows), 8):
            lg = model(x[i:i + 8])
            for j in range(lg.shape[0]):
                r = rows[i + j]
                qs = len(r) - len(q) + 2  # skip the "\n\n" before the question
                lp = F.log_softmax(lg[j, qs - 1:len(r) - 1], dim=-1)
                tgt = torch.tensor(r[qs:])
                scores.append(float(-lp.gather(1, tgt[:, None]).mean()))
    order = sorted(range(n_chunks), key=lambda i: scores[i])
    return order.index(target), scores[target], sorted(scores)[len(scores) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default=os.path.join(HERE, "checkpoints", "latest.pt"))
    p.add_argument("--length", type=int, default=512, help="sample length in tokens, answer included")
    p.add_argument("--n", type=int, default=50, help="samples per task")
    p.add_argument("--tasks", default="passkey,number_string,kv_retrieval")
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--chunk-trials", type=int, default=10, help="chunk-signal trials per task (0: skip)")
    p.add_argument("--chunks", type=int, default=32)
    p.add_argument("--chunk-window", type=int, default=512,
                   help="tokens per chunk window: BOS + [instruction] + chunk + query")
    p.add_argument("--chunk-instruction", action="store_true", help="put the instruction before every chunk")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model, ck = model_from_checkpoint(a.ckpt)
    print(f"checkpoint {a.ckpt}: step {ck.get('step')} stage {ck.get('stage')} "
          f"params {model.num_params()}", flush=True)
    out = {"ckpt": a.ckpt, "step": ck.get("step"), "length": a.length, "tasks": {}, "chunk": {}}
    L = a.length
    for task in a.tasks.split(","):
        if task not in T.tasks_for_length(L + 1):
            print(f"{task}: does not fit in {L}")
            continue
        t0 = time.time()
        r = greedy_eval(model, task, L, a.n, a.seed)
        out["tasks"][task] = r
        print(f"{task:14s} L={L} greedy em={r['em']:.3f} byte_acc={r['byte_acc']:.3f} "
              f"teacher-forced em={r['tf_em']:.3f} ({time.time() - t0:.0f}s)", flush=True)
        for want, got in r["examples"]:
            print(f"    want {want!r} got {got!r}")
    if a.chunk_trials > 0:
        rng = random.Random(f"chunk-{a.seed}")
        for task in a.tasks.split(","):
            ranks = []
            gaps = []
            for _ in range(a.chunk_trials):
                rank, s_needle, s_median = chunk_trial(model, task, rng, a.chunks, a.chunk_window,
                                                       a.chunk_instruction)
                ranks.append(rank)
                gaps.append(s_median - s_needle)
            top1 = sum(1 for r in ranks if r == 0)
            out["chunk"][task] = {"top1": top1, "trials": len(ranks), "ranks": ranks}
            print(f"chunk signal {task:14s} needle chunk first in {top1}/{len(ranks)} "
                  f"(ranks {ranks}; median-minus-needle NLL {sum(gaps) / len(gaps):.3f})", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
