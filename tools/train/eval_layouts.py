"""Teacher-forced exact match per prompt layout (tasks.LAYOUTS) on the generator's held-out-style
rows (512 bytes, distractor needles), as tools/train/README.md reports them.

    /usr/bin/python3 tools/train/eval_layouts.py CHECKPOINT [rows per cell (48)]
"""
import os, sys, random, torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks as T
from train import teacher_forced_metrics
from model import model_from_checkpoint
torch.set_num_threads(1)
m = model_from_checkpoint(sys.argv[1])[0]; m.eval()
n = int(sys.argv[2]) if len(sys.argv) > 2 else 48
with torch.no_grad():
    for lay in T.LAYOUTS:
        row = []
        for task in ("passkey", "number_string", "kv_retrieval"):
            r = random.Random(77)
            if task == "kv_retrieval":
                ss = [T.kv_sample(r, 513, layout=lay) for _ in range(n)]
            else:
                ss = [T.needle_sample(r, task, 513, layout=lay) for _ in range(n)]
            res = teacher_forced_metrics(m, ss, 512)
            row.append(f"{task} {res['em']:.2f}")
        print(lay, " | ".join(row), flush=True)
