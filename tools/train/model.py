"""Byte-level Llama model, computed exactly as llama.cpp's `llama` architecture.

Per layer:  h = x + attn(rmsnorm(x));  out = h + ffn(rmsnorm(h))
  - RMSNorm with a weight, eps 1e-5
  - attention with grouped KV heads (q head i reads kv head i // (n_head / n_head_kv)),
    no biases, RoPE of llama.cpp's NORM type (adjacent pairs (x[2i], x[2i+1]) rotated by
    pos * base^(-2i/head_dim)), causal softmax with scale 1/sqrt(head_dim)
  - SwiGLU FFN: down(silu(gate(x)) * up(x))
Then a final RMSNorm and an untied output projection.

Because RoPE is applied to adjacent pairs here (not to the two halves as in the HF
layout), the q/k weights go into GGUF as they are: no permutation on export.

Runs unchanged under torch 1.13 and 2.x (plain matmul attention, no compile).
"""

import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB_SIZE = 258
BOS_ID = 256
EOS_ID = 257


@dataclass
class ModelConfig:
    vocab_size: int = VOCAB_SIZE
    n_layer: int = 4
    d_model: int = 128
    n_head: int = 4
    n_head_kv: int = 2
    ffn_dim: int = 352
    context_length: int = 512
    rope_base: float = 10000.0
    rms_eps: float = 1e-5

    @property
    def head_dim(self):
        return self.d_model // self.n_head

    def to_dict(self):
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(head_dim, n_pos, base, device=None):
    """cos/sin of shape [n_pos, head_dim/2]; angle = pos * base^(-2i/head_dim)."""
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    ang = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float().to(device), ang.sin().float().to(device)


def apply_rope(x, cos, sin):
    """Reference form. x: [B, T, H, hd]; cos/sin: [T, hd/2]. Rotates (x[2i], x[2i+1])."""
    b, t, h, hd = x.shape
    xp = x.reshape(b, t, h, hd // 2, 2)
    x0 = xp[..., 0]
    x1 = xp[..., 1]
    c = cos[None, :, None, :]
    s = sin[None, :, None, :]
    r0 = x0 * c - x1 * s
    r1 = x0 * s + x1 * c
    return torch.stack((r0, r1), dim=-1).reshape(b, t, h, hd)


def apply_rope_complex(x, rot):
    """Same rotation as apply_rope, as one complex multiply: the pair (x[2i], x[2i+1]) is
    the complex number x[2i] + i*x[2i+1]; rot: complex [T, hd/2] = cos + i*sin."""
    b, t, h, hd = x.shape
    xc = torch.view_as_complex(x.reshape(b, t, h, hd // 2, 2).contiguous())
    return torch.view_as_real(xc * rot[None, :, None, :]).reshape(b, t, h, hd)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.n_head_kv = cfg.n_head_kv
        self.hd = cfg.head_dim
        d = cfg.d_model
        self.wq = nn.Linear(d, cfg.n_head * self.hd, bias=False)
        self.wk = nn.Linear(d, cfg.n_head_kv * self.hd, bias=False)
        self.wv = nn.Linear(d, cfg.n_head_kv * self.hd, bias=False)
        self.wo = nn.Linear(cfg.n_head * self.hd, d, bias=False)

    def forward(self, x, rot, cache=None):
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.n_head, self.hd)
        k = self.wk(x).view(b, t, self.n_head_kv, self.hd)
        v = self.wv(x).view(b, t, self.n_head_kv, self.hd)
        q = apply_rope_complex(q, rot)
        k = apply_rope_complex(k, rot)
        rep = self.n_head // self.n_head_kv
        # group the q heads with the kv head they read: q head i -> kv head i // rep
        q = q.transpose(1, 2).reshape(b * self.n_head_kv, rep * t, self.hd)
        k = k.transpose(1, 2)  # [B, Hkv, T, hd]
        v = v.transpose(1, 2)
        past = 0
        if cache is not None:
            if "k" in cache:
                past = cache["k"].shape[2]
                k = torch.cat((cache["k"], k), dim=2)
                v = torch.cat((cache["v"], v), dim=2)
            cache["k"] = k
            cache["v"] = v
        tk = k.shape[2]
        mask = causal_mask(t, past, rep, x.device)  # [rep * t, tk], 0 or -inf
        scores = torch.baddbmm(mask, q, k.reshape(b * self.n_head_kv, tk, self.hd).transpose(1, 2),
                               beta=1.0, alpha=1.0 / math.sqrt(self.hd))
        p = F.softmax(scores, dim=-1)
        o = torch.bmm(p, v.reshape(b * self.n_head_kv, tk, self.hd))  # [B*Hkv, rep*t, hd]
        o = o.view(b, self.n_head, t, self.hd).transpose(1, 2).reshape(b, t, self.n_head * self.hd)
        return self.wo(o)


_MASKS = {}


def causal_mask(t, past, rep, device):
    key = (t, past, rep, str(device))
    m = _MASKS.get(key)
    if m is None:
        qpos = torch.arange(t)[:, None] + past
        kpos = torch.arange(past + t)[None, :]
        m = torch.zeros(t, past + t).masked_fill(kpos > qpos, float("-inf")).repeat(rep, 1).to(device)
        if len(_MASKS) > 64:
            _MASKS.clear()
        _MASKS[key] = m
    return m


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w_gate = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.w_up = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.w_down = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)

    def forward(self, x):
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.ffn = FeedForward(cfg)

    def forward(self, x, rot, cache=None):
        h = x + self.attn(self.attn_norm(x), rot, cache)
        return h + self.ffn(self.ffn_norm(h))


class ByteLlama(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        assert cfg.d_model % cfg.n_head == 0 and cfg.n_head % cfg.n_head_kv == 0
        assert cfg.head_dim % 2 == 0
        self.cfg = cfg
        self.tok_embd = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.norm = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.output = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self._rope_len = 0
        self._ensure_rope(max(cfg.context_length, 1024))
        self.reset_parameters()

    def _ensure_rope(self, n):
        if n > self._rope_len:
            cos, sin = rope_tables(self.cfg.head_dim, n, self.cfg.rope_base)
            self._rot = torch.complex(cos, sin)
            self._rope_len = n

    def reset_parameters(self):
        std = 0.02
        resid_std = std / math.sqrt(2 * self.cfg.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            elif name.endswith("wo.weight") or name.endswith("w_down.weight"):
                nn.init.normal_(p, 0.0, resid_std)
            else:
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, cache=None):
        """idx: [B, T] token ids. cache: None, or a list (one dict per layer) that is
        filled / extended in place for incremental decoding. Returns logits [B, T, V]."""
        t = idx.shape[1]
        past = 0
        if cache is not None and "k" in cache[0]:
            past = cache[0]["k"].shape[2]
        self._ensure_rope(past + t)
        rot = self._rot[past:past + t]
        x = self.tok_embd(idx)
        for i, layer in enumerate(self.layers):
            x = layer(x, rot, None if cache is None else cache[i])
        return self.output(self.norm(x))

    def new_cache(self):
        return [dict() for _ in self.layers]

    def num_params(self):
        return sum(p.numel() for p in self.parameters())


def gguf_tensors(model: ByteLlama):
    """(gguf_name, tensor) pairs in llama.cpp naming, PyTorch row-major shapes.
    nn.Linear stores [out, in] row-major, which is exactly GGUF's ne = [in, out]."""
    out = [("token_embd.weight", model.tok_embd.weight)]
    for i, blk in enumerate(model.layers):
        out += [
            (f"blk.{i}.attn_norm.weight", blk.attn_norm.weight),
            (f"blk.{i}.attn_q.weight", blk.attn.wq.weight),
            (f"blk.{i}.attn_k.weight", blk.attn.wk.weight),
            (f"blk.{i}.attn_v.weight", blk.attn.wv.weight),
            (f"blk.{i}.attn_output.weight", blk.attn.wo.weight),
            (f"blk.{i}.ffn_norm.weight", blk.ffn_norm.weight),
            (f"blk.{i}.ffn_gate.weight", blk.ffn.w_gate.weight),
            (f"blk.{i}.ffn_up.weight", blk.ffn.w_up.weight),
            (f"blk.{i}.ffn_down.weight", blk.ffn.w_down.weight),
        ]
    out += [("output_norm.weight", model.norm.weight), ("output.weight", model.output.weight)]
    return out


def load_checkpoint(path):
    # weights_only=False: the checkpoint holds RNG states and curriculum state too.
    return torch.load(path, map_location="cpu", weights_only=False)


def model_from_checkpoint(path):
    ck = load_checkpoint(path)
    cfg = ModelConfig(**ck["model_config"])
    m = ByteLlama(cfg)
    m.load_state_dict(ck["model"])
    m.eval()
    return m, ck
