#!/usr/bin/env python3
"""Export a checkpoint's weights for the TypeScript GGUF writer.

Writes <out>.json (hyper-parameters and the tensor list: name, shape as PyTorch's
row-major shape, byte offset into <out>.bin, byte size) and <out>.bin (raw little-endian
float32, tensors back to back in the listed order). Tensor names are llama.cpp's GGUF
names; nn.Linear's [out, in] row-major layout is GGUF's ne = [in, out], so nothing is
transposed, and q/k need no permutation (RoPE already rotates adjacent pairs, llama.cpp's
NORM type).

--verify reloads <out>.bin, runs an independent numpy forward pass over a prompt and
compares its logits with the torch model's; it also stores that prompt's last-position
logits in <out>.json ("reference") so the engine can be checked against them.

  /usr/bin/python3 tools/train/export.py --ckpt tools/train/checkpoints/final.pt --out /tmp/bytellama --verify
"""

import argparse
import json
import os
import random
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from model import gguf_tensors, model_from_checkpoint  # noqa: E402
import tasks as T  # noqa: E402


def export(model, ck, out):
    cfg = model.cfg
    tensors = []
    offset = 0
    with open(out + ".bin", "wb") as f:
        for name, t in gguf_tensors(model):
            a = t.detach().cpu().contiguous().numpy().astype("<f4", copy=False)
            buf = a.tobytes(order="C")
            f.write(buf)
            tensors.append({"name": name, "shape": list(a.shape), "dtype": "f32",
                            "offset": offset, "nbytes": len(buf)})
            offset += len(buf)
    meta = {
        "architecture": "llama",
        "name": "parallelcomp-bytellama",
        "context_length": cfg.context_length,
        "embedding_length": cfg.d_model,
        "block_count": cfg.n_layer,
        "feed_forward_length": cfg.ffn_dim,
        "head_count": cfg.n_head,
        "head_count_kv": cfg.n_head_kv,
        "rope_dimension_count": cfg.head_dim,
        "rope_freq_base": cfg.rope_base,
        "rope_type": "norm (adjacent pairs)",
        "rms_eps": cfg.rms_eps,
        "vocab_size": cfg.vocab_size,
        "bos_token_id": T.BOS_ID,
        "eos_token_id": T.EOS_ID,
        "tokenizer": "bytes: token id = byte value for 0..255, 256 = BOS, 257 = EOS",
        "prompt_layout": "BOS + [instruction + '\\n\\n'] + context + '\\n\\n' + question + '\\n' + "
                         "answer_prefix; the model continues with ' ' + answer + EOS",
        "training": {"step": ck.get("step"), "stage": ck.get("stage"), "tokens": ck.get("tokens"),
                     "last_eval": ck.get("last_eval")},
        "data_file": os.path.basename(out + ".bin"),
        "tensors": tensors,
    }
    with open(out + ".json", "w") as f:
        json.dump(meta, f, indent=1)
    return meta


# ------------------------------------------------------------------ numpy reference

def np_forward(meta, binpath, tokens):
    raw = np.fromfile(binpath, dtype="<f4")
    W = {t["name"]: raw[t["offset"] // 4: (t["offset"] + t["nbytes"]) // 4].reshape(t["shape"])
         for t in meta["tensors"]}
    d = meta["embedding_length"]
    H, Hkv = meta["head_count"], meta["head_count_kv"]
    hd = d // H
    eps = meta["rms_eps"]
    n = len(tokens)

    def rms(x, w):
        return x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps) * w

    def rope(x):  # x [n, heads, hd]; rotate pairs (2i, 2i+1) by pos * base^(-2i/hd)
        pos = np.arange(n)[:, None]
        ang = pos * meta["rope_freq_base"] ** (-np.arange(0, hd, 2) / hd)[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out

    x = W["token_embd.weight"][tokens].astype(np.float64)
    for i in range(meta["block_count"]):
        h = rms(x, W[f"blk.{i}.attn_norm.weight"])
        q = rope((h @ W[f"blk.{i}.attn_q.weight"].T).reshape(n, H, hd))
        k = rope((h @ W[f"blk.{i}.attn_k.weight"].T).reshape(n, Hkv, hd))
        v = (h @ W[f"blk.{i}.attn_v.weight"].T).reshape(n, Hkv, hd)
        o = np.zeros((n, H, hd))
        for hh in range(H):
            kv = hh // (H // Hkv)
            sc = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(hd)
            sc = sc + np.triu(np.full((n, n), -np.inf), 1)
            sc = np.exp(sc - sc.max(-1, keepdims=True))
            sc /= sc.sum(-1, keepdims=True)
            o[:, hh, :] = sc @ v[:, kv, :]
        x = x + o.reshape(n, d) @ W[f"blk.{i}.attn_output.weight"].T
        h = rms(x, W[f"blk.{i}.ffn_norm.weight"])
        g = h @ W[f"blk.{i}.ffn_gate.weight"].T
        u = h @ W[f"blk.{i}.ffn_up.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ W[f"blk.{i}.ffn_down.weight"].T
    return rms(x, W["output_norm.weight"]) @ W["output.weight"].T


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default=os.path.join(HERE, "checkpoints", "latest.pt"))
    p.add_argument("--out", required=True, help="output path without extension")
    p.add_argument("--verify", action="store_true")
    a = p.parse_args()
    model, ck = model_from_checkpoint(a.ckpt)
    meta = export(model, ck, a.out)
    total = sum(t["nbytes"] for t in meta["tensors"])
    print(f"wrote {a.out}.json and {a.out}.bin ({len(meta['tensors'])} tensors, {total} bytes, "
          f"{total // 4} parameters)")
    if a.verify:
        s = T.task_sample(random.Random(5), "passkey", 257)
        prompt = s.tokens[:s.a_span[0]]
        ref = np_forward(meta, a.out + ".bin", prompt)
        with torch.no_grad():
            got = model(torch.tensor([prompt]))[0].double().numpy()
        err = float(np.abs(ref - got).max())
        print(f"numpy forward vs torch: max |logit diff| = {err:.2e} over {len(prompt)} positions; "
              f"argmax agree {(ref.argmax(-1) == got.argmax(-1)).mean():.3f}")
        last = got[-1]
        meta["reference"] = {
            "prompt_tokens": prompt,
            "last_logits": [round(float(v), 5) for v in last],
            "last_argmax": int(last.argmax()),
            "greedy_answer": s.meta["value"],
        }
        with open(a.out + ".json", "w") as f:
            json.dump(meta, f, indent=1)
        if err > 1e-3:
            sys.exit("verification failed")


if __name__ == "__main__":
    main()
