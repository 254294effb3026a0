#!/usr/bin/env python3
"""Train the byte-level Llama retrieval model (see README.md in this folder).

Curriculum: stage 0 is induction (random string, then the same again) at the first
length; each later stage adds the tasks at the next length, keeps the shorter lengths and
~15% induction rows in every batch, and the run advances when the answer exact-match on a
held-out batch at the current length reaches the stage's threshold (a budget cap per stage
is only a safety net). The learning rate warms up, stays constant, and decays linearly
over the last --decay-frac of the budget.

The budget (--max-minutes) and the schedule count the process's own CPU time divided by
--threads, so pausing the job (kill -STOP / -CONT) or other load on the machine does not
use it up. Checkpoints hold model, optimizer, curriculum and RNG state; --resume continues
from tools/train/checkpoints/latest.pt.
"""

import argparse
import atexit
import json
import math
import os
import random
import signal
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from model import ByteLlama, ModelConfig, load_checkpoint  # noqa: E402
import tasks as T  # noqa: E402

CKPT_VERSION = 1
# arguments that may change when resuming; all others come from the checkpoint
RUNTIME_KEYS = ("threads", "max_minutes", "ckpt_minutes", "out_dir", "max_steps", "eval_steps",
                "resume", "log_every", "task_weights")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", default=os.path.join(HERE, "checkpoints"))
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/latest.pt")
    p.add_argument("--init-from", default="",
                   help="start from this checkpoint's weights (fresh optimizer, budget and data; the "
                        "curriculum begins at its last stage); the model shape comes from the checkpoint")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=170.0,
                   help="total training budget (CPU minutes / threads), across resumes")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    p.add_argument("--seed", type=int, default=1234)
    # model
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=0, help="0: ~2.7 x d rounded to a multiple of 32")
    # optimisation
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--decay-frac", type=float, default=0.15, help="final linear decay, fraction of budget")
    p.add_argument("--min-lr-frac", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    # curriculum
    p.add_argument("--lengths", default="48,128,256,512", help="stage context lengths (first: induction only)")
    p.add_argument("--thresholds", default="0.9,0.7,0.6",
                   help="to leave stage k: induction token accuracy (k=0), min task exact-match (k>0)")
    p.add_argument("--stage-caps", default="0.12,0.3,0.5",
                   help="safety net: stage k+1 starts at the latest at this fraction of the budget")
    p.add_argument("--stage0-rows", type=int, default=64)
    p.add_argument("--tokens-per-step", type=int, default=8192)
    p.add_argument("--current-share", type=float, default=0.65,
                   help="share of task tokens at the current length (rest: shorter lengths)")
    p.add_argument("--task-weights", default="1,1,1,1,1",
                   help="relative weights of passkey, number_string, kv_retrieval, kv_short, kv_multi rows "
                        "(may change on resume; a shorter list gives the missing tail weight 0)")
    p.add_argument("--layout-mix", default="1,0,0,0,0",
                   help="shares of the prompt layouts in needle and kv_retrieval rows "
                        "(tasks.LAYOUTS: split, published, lead_only, no_lead, ruler); the default is "
                        "the first two runs' single layout")
    p.add_argument("--induction-frac", type=float, default=0.15, help="share of rows that are induction")
    # evaluation / checkpoints
    p.add_argument("--eval-steps", type=int, default=50)
    p.add_argument("--eval-n", type=int, default=48, help="held-out samples per task")
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    p.add_argument("--log-every", type=int, default=0, help="also print a training line every N steps")
    a = p.parse_args(argv)
    return a


def ffn_dim(d, ffn):
    if ffn:
        return ffn
    return int(round(2.7 * d / 32.0)) * 32


# ------------------------------------------------------------------ batching

def collate(samples, length):
    """Pad samples (<= length+1 tokens) to length+1; returns inputs, targets, weights, answer mask."""
    n = len(samples)
    toks = torch.full((n, length + 1), T.EOS_ID, dtype=torch.long)
    w = torch.zeros((n, length + 1))
    amask = torch.zeros((n, length + 1), dtype=torch.bool)
    for i, s in enumerate(samples):
        k = len(s.tokens)
        assert k <= length + 1, (k, length)
        toks[i, :k] = torch.tensor(s.tokens)
        w[i, :k] = torch.tensor(s.weights)
        for a0, a1 in s.meta.get("a_spans", [s.a_span]):
            amask[i, a0:a1] = True
    return toks[:, :-1], toks[:, 1:], w[:, 1:], amask[:, 1:]


def stage_plan(stage, lengths, args):
    """[(length, kind, rows)] for one optimisation step; kind is 'task' or 'induction'."""
    if stage == 0:
        return [(lengths[0], "induction", args.stage0_rows)]
    cur = lengths[stage]
    task_lens = [L for L in lengths[1:stage + 1]]
    task_tokens = args.tokens_per_step * (1.0 - args.induction_frac)
    plan = []
    shorter = task_lens[:-1]
    share_cur = args.current_share if shorter else 1.0
    plan.append((cur, "task", max(1, round(task_tokens * share_cur / (cur + 1)))))
    for L in shorter:
        plan.append((L, "task", max(1, round(task_tokens * (1 - share_cur) / len(shorter) / (L + 1)))))
    n_task_rows = sum(r for _, _, r in plan)
    n_ind = max(1, round(n_task_rows * args.induction_frac / (1.0 - args.induction_frac)))
    ind_lens = lengths[:stage + 1]
    counts = {}
    for i in range(n_ind):
        L = ind_lens[i % len(ind_lens)]
        counts[L] = counts.get(L, 0) + 1
    for L, r in sorted(counts.items()):
        plan.append((L, "induction", r))
    return plan


def make_batch(rng, plan, task_weights=None):
    """Groups by length: {length: [samples]}."""
    groups = {}
    for L, kind, rows in plan:
        for _ in range(rows):
            if kind == "induction":
                s = T.induction_sample(rng, L + 1)
            else:
                s = T.random_task_sample(rng, L + 1, task_weights)
            groups.setdefault(L, []).append(s)
    return groups


# ------------------------------------------------------------------ evaluation

def eval_set(length, task, n, seed):
    rng = random.Random(f"eval-{seed}-{task}-{length}")
    return [T.task_sample(rng, task, length + 1) for _ in range(n)]


@torch.no_grad()
def teacher_forced_metrics(model, samples, length, bs=16):
    """Exact match (every answer token is the argmax given the right prefix, which is the
    same as greedy decoding producing the answer and EOS), answer byte accuracy, answer
    NLL per token."""
    exact = correct = total = 0
    nll = 0.0
    for i in range(0, len(samples), bs):
        chunk = samples[i:i + bs]
        x, y, _, am = collate(chunk, length)
        logits = model(x)
        pred = logits.argmax(-1)
        lp = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none").view(y.shape)
        ok = (pred == y) | ~am
        exact += int(ok.all(dim=1).sum())
        correct += int(((pred == y) & am).sum())
        total += int(am.sum())
        nll += float((lp * am).sum())
    return {"em": exact / len(samples), "acc": correct / max(1, total), "nll": nll / max(1, total)}


# ------------------------------------------------------------------ training state

class Trainer:
    def __init__(self, args):
        self.args = args
        self.lengths = [int(x) for x in args.lengths.split(",")]
        self.thresholds = [float(x) for x in args.thresholds.split(",")]
        self.caps = [float(x) for x in args.stage_caps.split(",")]
        assert len(self.thresholds) >= len(self.lengths) - 1 and len(self.caps) >= len(self.lengths) - 1
        self.out_dir = args.out_dir
        os.makedirs(self.out_dir, exist_ok=True)
        self.log_path = os.path.join(self.out_dir, "train.log")
        self.ckpt_path = os.path.join(self.out_dir, "latest.pt")
        self.stop_requested = False
        self.eval_cache = {}

    # ---- logging
    def log(self, line):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        line = f"{stamp} {line}"
        print(line, flush=True)
        with open(self.log_path, "a") as f:
            f.write(line + "\n")
            f.flush()

    # ---- setup
    def fresh(self):
        a = self.args
        torch.manual_seed(a.seed)
        self.cfg = ModelConfig(n_layer=a.layers, d_model=a.d_model, n_head=a.heads, n_head_kv=a.kv_heads,
                               ffn_dim=ffn_dim(a.d_model, a.ffn), context_length=self.lengths[-1])
        self.model = ByteLlama(self.cfg)
        self.opt = self.make_opt()
        self.rng = random.Random(a.seed)
        self.step = 0
        self.stage = 0
        self.progress_s = 0.0
        self.tokens = 0
        self.history = [{"stage": 0, "step": 0, "progress_min": 0.0, "reason": "start"}]
        self.last_eval = None

    def make_opt(self):
        decay, no_decay = [], []
        for n, p in self.model.named_parameters():
            (decay if p.dim() >= 2 else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": self.args.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=self.args.lr, betas=(0.9, 0.95), eps=1e-8)

    def state_dict(self):
        return {
            "version": CKPT_VERSION,
            "model_config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "args": vars(self.args),
            "step": self.step,
            "stage": self.stage,
            "progress_s": self.progress_now(),
            "tokens": self.tokens,
            "history": self.history,
            "last_eval": self.last_eval,
            "data_rng": self.rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            "saved_at": time.time(),
        }

    def load(self, ck):
        self.cfg = ModelConfig(**ck["model_config"])
        self.model = ByteLlama(self.cfg)
        self.model.load_state_dict(ck["model"])
        self.opt = self.make_opt()
        self.opt.load_state_dict(ck["optimizer"])
        self.step = ck["step"]
        self.stage = ck["stage"]
        self.progress_s = ck["progress_s"]
        self.tokens = ck["tokens"]
        self.history = ck["history"]
        self.last_eval = ck.get("last_eval")
        self.rng = random.Random()
        self.rng.setstate(ck["data_rng"])
        torch.set_rng_state(ck["torch_rng"])

    def save(self, path=None):
        path = path or self.ckpt_path
        tmp = path + ".tmp"
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    # ---- time & schedule
    def progress_now(self):
        return self.progress_s + (time.process_time() - self.cpu0) / max(1, self.args.threads)

    def budget_s(self):
        return self.args.max_minutes * 60.0

    def lr_at(self, progress):
        a = self.args
        lr = a.lr
        if self.step < a.warmup_steps:
            lr *= (self.step + 1) / a.warmup_steps
        d0 = self.budget_s() * (1.0 - a.decay_frac)
        if progress > d0 and a.decay_frac > 0:
            x = min(1.0, (progress - d0) / (self.budget_s() * a.decay_frac))
            lr *= a.min_lr_frac + (1.0 - a.min_lr_frac) * (1.0 - x)
        return lr

    # ---- evaluation
    def eval_samples(self, length, task):
        key = (length, task)
        if key not in self.eval_cache:
            self.eval_cache[key] = eval_set(length, task, self.args.eval_n, self.args.seed)
        return self.eval_cache[key]

    def evaluate(self):
        self.model.eval()
        L = self.lengths[self.stage]
        res = {}
        if self.stage == 0:
            res["induction"] = teacher_forced_metrics(self.model, self.eval_samples(L, "induction"), L)
        else:
            for t in T.tasks_for_length(L + 1):
                res[t] = teacher_forced_metrics(self.model, self.eval_samples(L, t), L)
            res["induction"] = teacher_forced_metrics(self.model, self.eval_samples(L, "induction"), L)
        self.model.train()
        return res

    def stage_score(self, res):
        if self.stage == 0:
            return res["induction"]["acc"]
        return min(v["em"] for k, v in res.items() if k != "induction")

    def task_weights(self):
        """{task: weight} from --task-weights, or None for the uniform draw (the original run)."""
        w = [float(x) for x in getattr(self.args, "task_weights", "1,1,1,1,1").split(",")]
        if len(w) > len(T.TASKS) or min(w) < 0:
            raise SystemExit(f"--task-weights needs up to {len(T.TASKS)} non-negative numbers "
                             f"({', '.join(T.TASKS)}), got {self.args.task_weights!r}")
        if len(w) == len(T.TASKS) and len(set(w)) == 1:
            return None
        # tasks added after a run's weights were written (the list's tail) get weight 0
        return dict(zip(T.TASKS, w + [0.0] * (len(T.TASKS) - len(w))))

    def set_layout_mix(self):
        mix = [float(x) for x in getattr(self.args, "layout_mix", "1,0,0,0,0").split(",")]
        if len(mix) != len(T.LAYOUTS) or min(mix) < 0 or sum(mix) <= 0:
            raise SystemExit(f"--layout-mix needs {len(T.LAYOUTS)} non-negative shares "
                             f"({', '.join(T.LAYOUTS)}), got {self.args.layout_mix!r}")
        T.LAYOUT_MIX = tuple(mix)

    # ---- main loop
    def run(self):
        a = self.args
        self.set_layout_mix()
        torch.set_num_threads(a.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        self.cpu0 = time.process_time()
        if a.resume:
            ck = load_checkpoint(self.ckpt_path)
            saved = dict(ck["args"])
            for k in RUNTIME_KEYS:
                saved[k] = getattr(a, k)
            self.args = a = argparse.Namespace(**saved)
            self.__init__(a)
            self.set_layout_mix()
            self.cpu0 = time.process_time()
            self.load(ck)
            self.log(f"# resume step={self.step} stage={self.stage} progress={self.progress_s / 60:.1f}m "
                     f"budget={a.max_minutes}m")
        elif a.init_from:
            ck = load_checkpoint(a.init_from)
            self.fresh()
            self.cfg = ModelConfig(**ck["model_config"])
            self.model = ByteLlama(self.cfg)
            self.model.load_state_dict(ck["model"])
            self.opt = self.make_opt()
            self.stage = len(self.lengths) - 1
            self.history = [{"stage": self.stage, "step": 0, "progress_min": 0.0,
                             "reason": f"init from {a.init_from} (step {ck['step']})"}]
            self.log(f"# start {json.dumps(vars(a))}")
            self.log(f"# init from {a.init_from}: step {ck['step']}, {ck['tokens'] / 1e6:.2f}M tokens, "
                     f"model {json.dumps(self.cfg.to_dict())}")
        else:
            self.fresh()
            self.log(f"# start {json.dumps(vars(a))}")
            self.log(f"# model {json.dumps(self.cfg.to_dict())} params={self.model.num_params()}")
        self.model.train()
        pid_path = os.path.join(self.out_dir, "train.pid")
        with open(pid_path, "w") as f:
            f.write(f"{os.getpid()}\n")

        def cleanup():
            try:
                with open(pid_path) as f:
                    if f.read().strip() == str(os.getpid()):
                        os.remove(pid_path)
            except OSError:
                pass
        atexit.register(cleanup)

        def on_signal(signum, frame):
            self.stop_requested = True
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

        last_ckpt_wall = time.time()
        win_loss = win_ans = win_w = win_aw = 0.0
        win_tokens = 0
        win_cpu = time.process_time()
        win_wall = time.time()
        reason = "budget"
        while True:
            prog = self.progress_now()
            if prog >= self.budget_s():
                break
            if a.max_steps and self.step >= a.max_steps:
                reason = "max-steps"
                break
            if self.stop_requested:
                reason = "signal"
                break
            lr = self.lr_at(prog)
            for g in self.opt.param_groups:
                g["lr"] = lr
            plan = stage_plan(self.stage, self.lengths, a)
            groups = make_batch(self.rng, plan, self.task_weights())
            batches = [(L,) + collate(ss, L) for L, ss in sorted(groups.items())]
            wsum = sum(float(b[3].sum()) for b in batches)
            self.opt.zero_grad(set_to_none=True)
            for L, x, y, w, am in batches:
                logits = self.model(x)
                nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                      reduction="none").view(y.shape)
                loss = (nll * w).sum() / wsum
                loss.backward()
                win_loss += float(loss) * wsum
                win_w += wsum
                win_ans += float((nll.detach() * am).sum())
                win_aw += float(am.sum())
                win_tokens += x.numel()
            if a.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), a.grad_clip)
            self.opt.step()
            self.step += 1
            self.tokens += sum(x.numel() for _, x, _, _, _ in batches)

            if a.log_every and self.step % a.log_every == 0:
                print(f"step {self.step} loss {win_loss / max(win_w, 1e-9):.4f}", flush=True)

            if self.step % a.eval_steps == 0:
                res = self.evaluate()
                self.last_eval = {"step": self.step, "length": self.lengths[self.stage], "res": res}
                cpu_dt = (time.process_time() - win_cpu) / max(1, a.threads)
                wall_dt = time.time() - win_wall
                prog = self.progress_now()
                parts = [f"step={self.step}", f"prog={prog / 60:.1f}m", f"stage={self.stage}",
                         f"L={self.lengths[self.stage]}", f"lr={lr:.2e}",
                         f"loss={win_loss / max(win_w, 1e-9):.4f}",
                         f"ans_nll={win_ans / max(win_aw, 1):.3f}",
                         f"tok/s={win_tokens / max(cpu_dt, 1e-9):.0f}",
                         f"wall_tok/s={win_tokens / max(wall_dt, 1e-9):.0f}",
                         f"Mtok={self.tokens / 1e6:.2f}"]
                for t, m in res.items():
                    parts.append(f"| {t} em={m['em']:.3f} acc={m['acc']:.3f} nll={m['nll']:.3f}")
                self.log(" ".join(parts))
                win_loss = win_ans = win_w = win_aw = 0.0
                win_tokens = 0
                win_cpu = time.process_time()
                win_wall = time.time()
                # curriculum
                if self.stage < len(self.lengths) - 1:
                    score = self.stage_score(res)
                    why = None
                    if score >= self.thresholds[self.stage]:
                        why = f"score {score:.3f} >= {self.thresholds[self.stage]}"
                    elif prog >= self.caps[self.stage] * self.budget_s():
                        why = f"cap: score {score:.3f} at {prog / 60:.1f}m"
                    if why:
                        self.save(os.path.join(self.out_dir, f"stage{self.stage}.pt"))
                        self.stage += 1
                        self.history.append({"stage": self.stage, "step": self.step,
                                             "progress_min": prog / 60, "reason": why})
                        self.log(f"# advance to stage {self.stage} (L={self.lengths[self.stage]}) "
                                 f"at step {self.step}: {why}")
                        self.save()
                        last_ckpt_wall = time.time()

            if time.time() - last_ckpt_wall >= a.ckpt_minutes * 60:
                self.save()
                last_ckpt_wall = time.time()

        self.save()
        if reason == "budget":
            self.save(os.path.join(self.out_dir, "final.pt"))
        res = self.evaluate()
        parts = [f"# end ({reason}) step={self.step} prog={self.progress_now() / 60:.1f}m stage={self.stage}",
                 f"Mtok={self.tokens / 1e6:.2f}"]
        for t, m in res.items():
            parts.append(f"| {t} em={m['em']:.3f} acc={m['acc']:.3f}")
        self.log(" ".join(parts))


def main(argv=None):
    args = parse_args(argv)
    Trainer(args).run()


if __name__ == "__main__":
    main()
