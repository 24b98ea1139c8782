"""gpt.py: a character-level GPT written from scratch in one file, after Andrej Karpathy's lecture "Let's
build GPT: from scratch, in code, spelled out" and nanoGPT: masked multi-head attention, feed-forward layers,
residual connections and LayerNorm learn to predict each next character. bigram.py is the baseline; the
README says where this departs from the lecture, and what each change gained.

    python gpt.py                                 train (a CPU or a GPU default, by device), then write
    python gpt.py --max_iters=500 --device=cpu    override any setting; --help lists them all
    python gpt.py --input=my_text.txt             train on any UTF-8 text, in any alphabet
    python gpt.py --sample --prompt="ROMEO:"      write from the saved checkpoint, no training
    python gpt.py --resume --max_time=600         go on with the checkpoint's run, to 600 s in all
    torchrun --standalone --nproc_per_node=2 gpt.py   data-parallel training on 2 processes (or GPUs)
In a notebook: %run gpt.py --max_iters=500, or paste the file into a cell ending in result = main([...]); then
result.model, result.encode and result.decode are at hand. "# ---- plumbing" starts what serves the rest.
"""
import argparse
import copy
import hashlib
import math
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn as nn
from torch.nn import functional as F

# ----------------------------------------------------------------------------- hyperparameters
def setting(default, meaning, cuda=None):
    """A hyperparameter: its default, what it means (for --help), and a CUDA GPU's default if it differs."""
    return field(default=default, metadata={"help": meaning, **({} if cuda is None else {"cuda": cuda})})

@dataclass
class Hyperparameters:
    # a CUDA GPU trains the lecture's size; a CPU (or mps) a small model, sized to what its time budget buys
    batch_size: int = setting(8, "sequences per optimiser step, all processes together", cuda=64)
    block_size: int = setting(256, "context length: the characters the model sees")
    n_layer: int = setting(4, "transformer blocks", cuda=6)
    n_head: int = setting(4, "attention heads, each n_embd // n_head wide", cuda=6)
    n_embd: int = setting(128, "width of the residual stream", cuda=384)
    dropout: float = setting(0.0, "dropout on the embeddings, attention and residual branches", cuda=0.2)
    learning_rate: float = setting(1.5e-3, "peak learning rate, reached after the warmup", cuda=1e-3)
    min_lr: float = setting(1.5e-4, "the learning rate at the end of the budget", cuda=1e-4)
    max_iters: int = setting(100_000, "optimiser steps at most", cuda=1200)
    max_time: float = setting(280.0, "seconds at most, compile and evaluations included (0: none)", cuda=0.0)
    eval_interval: int = setting(500, "steps between train/val estimates; the last step has one", cuda=250)
    eval_iters: int = setting(10, "batches per estimate; the best estimate picks the checkpoint", cuda=50)
    log_interval: int = setting(100, "steps between progress lines", cuda=50)
    eval_chars: int = setting(1_000_000, "the final validation loss reads at most this many characters")
    muon: bool = setting(True, "Muon for the blocks' matrices, AdamW for the rest (else AdamW)", cuda=False)
    warmup_iters: int = setting(100, "steps of linear warmup up to learning_rate")
    cooldown_frac: float = setting(0.5, "the end of the budget in which the learning rate decays to min_lr")
    weight_decay: float = setting(1.0, "decay of the weight matrices and embeddings", cuda=0.3)
    grad_clip: float = setting(1.0, "clip the gradient norm to this (0: off)")
    seed: int = setting(1337, "seeds weights, batches and sample; a run repeats exactly with --max_time=0")
    input: str = setting("input.txt", "the UTF-8 text to train on; the default lives beside this file")

hp = Hyperparameters()  # the run's settings and options (Settings, below): main() sets them
train_data = val_data = None  # the two splits as tensors of character ids: main() loads them

# ----------------------------------------------------------------------------- data
def tokenizer(chars):
    """The lecture's character tokenizer: each character of the vocabulary is one integer."""
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}
    encode = lambda s: [stoi[c] for c in s]  # string -> list of integers
    decode = lambda l: "".join(itos[i] for i in l)  # list of integers -> string
    return encode, decode

def load_data(path, device):
    """The lecture's data steps (chars, encode, 90% to train on), reading the text in pieces into small integers."""
    global train_data, val_data
    counts = torch.zeros(0x110000, dtype=torch.long)  # how often each Unicode character is in the text
    for piece in code_points(path):  # (n,) int32: the next piece's characters, as numbers (plumbing)
        counts += torch.bincount(piece, minlength=len(counts))
    chars = [chr(c) for c in counts.nonzero().flatten().tolist()]  # sorted by code point
    # the smallest integer type that holds every id (a byte for up to 256 characters); get_batch widens it
    dtype = torch.uint8 if len(chars) <= 2**8 else torch.int16 if len(chars) <= 2**15 else torch.int32
    stoi = ((counts > 0).cumsum(0) - 1).to(dtype)  # the lecture's stoi as a table: how many come before
    data = torch.empty(counts.sum(), dtype=dtype)
    i = 0
    for piece in code_points(path):
        data[i:i + len(piece)] = stoi.index_select(0, piece)  # encode, a whole piece at a time
        i += len(piece)
    n = int(0.9 * len(data))
    if min(n, len(data) - n) <= hp.block_size + 1:
        raise UsageError(f"the text is too short for --block_size={hp.block_size}: its splits of {n:,} and "
                         f"{len(data) - n:,} characters must each be over {hp.block_size + 1}")
    train_data = data[:n].to(device)
    val_data = data[n:].to(device)
    return chars

def get_batch(split, batch_size, generator=None):
    """Random windows of block_size + 1 characters of a split: y[b, t] is the character after x[b, :t+1]."""
    data = train_data if split == "train" else val_data
    B, T = batch_size, hp.block_size
    # randint's bound is exclusive: the last start is len - T - 1, whose window ends with the split's end
    ix = torch.randint(len(data) - T, (B,), device=data.device, generator=generator)  # (B,)
    windows = data[ix[:, None] + torch.arange(T + 1, device=data.device)].long()  # (B, T+1), widened
    return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)

@torch.no_grad()
def estimate_loss(model):
    """Mean loss over eval_iters batches of each split, in eval mode, the same ones each time: comparable."""
    out = {}
    model.eval()
    for split in ("train", "val"):
        generator = torch.Generator(device=train_data.device).manual_seed(hp.seed)
        losses = torch.zeros(hp.eval_iters, device=train_data.device)
        for k in range(hp.eval_iters):
            X, Y = get_batch(split, hp.batch_size, generator)
            _, loss = model(X, Y)
            losses[k] = loss
        out[split] = losses.mean().item()
    model.train()
    return out

# ----------------------------------------------------------------------------- model
@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0

def attention_reference(q, k, v):
    """What F.scaled_dot_product_attention(q, k, v, is_causal=True) computes, written out as in the lecture.
    q, k, v: (B, nh, T, hs). The model calls the fused one; a test checks that they agree."""
    T = q.size(-2)
    hs = q.size(-1)  # head size
    wei = q @ k.transpose(-2, -1) * hs**-0.5  # (B, nh, T, T); scaled to unit variance so softmax stays soft
    tril = torch.tril(torch.ones(T, T, dtype=torch.bool, device=q.device))
    wei = wei.masked_fill(~tril, float("-inf"))  # a token sees itself and its past, never its future
    wei = F.softmax(wei, dim=-1)  # (B, nh, T, T), each row sums to 1
    return wei @ v  # (B, nh, T, hs)

def rotary_tables(block_size, head_size, base=10000.0):
    """cos and sin of the angle each position turns each pair of channels by, (block_size, head_size // 2)."""
    freqs = base ** (-torch.arange(0, head_size, 2).float() / head_size)  # (hs/2,) slower for later pairs
    angles = torch.outer(torch.arange(block_size).float(), freqs)  # (block_size, hs/2)
    return angles.cos(), angles.sin()

def apply_rotary(x, cos, sin):
    """Rotary position embedding: turn each pair of channels (i, i + hs/2) of q or k, x: (B, nh, T, hs), by an
    angle that grows with the position, so q·k sees positions only as how far apart two tokens are."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, nh, T, hs/2) each
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, nh, T, hs)

class CausalSelfAttention(nn.Module):
    """The lecture's Head and MultiHeadAttention in one batched op (c_proj is its proj; nanoGPT's names)."""

    def __init__(self, n_embd, n_head, dropout):
        super().__init__()
        self.n_head = n_head
        self.dropout_p = dropout  # a probability, for scaled_dot_product_attention
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)  # query, key, value of every head at once
        self.c_proj = nn.Linear(n_embd, n_embd, bias=False)  # mixes the heads back into the residual stream
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # (B, T, C) each
        hs = C // self.n_head  # head size
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        # QK-norm: unit-RMS queries and keys bound the attention logits, so a high learning rate trains stably
        q = F.rms_norm(q, (hs,))
        k = F.rms_norm(k, (hs,))
        q = apply_rotary(q, cos, sin)
        k = apply_rotary(k, cos, sin)
        # attention_reference in one kernel; dropout_p drops entries of wei
        dropout_p = self.dropout_p if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side again
        return self.resid_dropout(self.c_proj(y))

class FeedForward(nn.Module):
    """Per-token computation after the tokens have communicated: 4x wider, then back."""

    def __init__(self, n_embd, dropout):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=False)
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = self.c_fc(x)  # (B, T, 4C)
        x = F.relu(x).square()  # ReLU squared: the lecture's ReLU, sharper
        x = self.c_proj(x)  # (B, T, C)
        return self.dropout(x)

class Block(nn.Module):
    """Communication (attention), then computation (feed-forward), each added to the residual stream."""

    def __init__(self, n_embd, n_head, dropout):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.ffwd = FeedForward(n_embd, dropout)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.ln1(x), cos, sin)  # (B, T, C); pre-norm: the sum carries gradients straight back
        return x + self.ffwd(self.ln2(x))  # (B, T, C)

class GPT(nn.Module):
    """The lecture's BigramLanguageModel grown into a GPT: a character embedding, blocks, LayerNorm, a head."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.n_embd)
        # positions enter as rotations of q and k (apply_rotary), not as a learned table added to the tokens
        cos, sin = rotary_tables(config.block_size, config.n_embd // config.n_head)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config.n_embd, config.n_head, config.dropout)
                                    for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # weights N(0, 0.02), except that the projections into the residual stream start at zero, so that each
        # block starts as the identity
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.zeros_(p)
            elif p.dim() == 2:
                nn.init.normal_(p, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        tok_emb = self.token_embedding_table(idx)  # (B, T, C)
        x = self.drop(tok_emb)  # (B, T, C)
        cos = self.rope_cos[:T]  # (T, hs/2)
        sin = self.rope_sin[:T]  # (T, hs/2)
        for block in self.blocks:
            x = block(x, cos, sin)  # (B, T, C)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        if targets is None:
            return logits, None
        # in fp32, even under bf16 autocast
        loss = F.cross_entropy(logits.view(B * T, -1).float(), targets.reshape(B * T))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=0):
        """idx (B, T) and max_new_tokens sampled after it, (B, T + max_new_tokens), in eval mode."""
        was_training = self.training
        self.eval()
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.config.block_size:])  # the model sees at most block_size characters
            logits = logits[:, -1, :].float()  # (B, vocab_size): the last position scores the next character
            if temperature == 0:  # greedy: no division by zero, the likeliest character
                idx_next = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
            else:
                logits = logits / temperature
                if top_k:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = float("-inf")
                idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)  # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
        self.train(was_training)
        return idx

# ----------------------------------------------------------------------------- optimiser and schedule
def orthogonalise(G, steps=5, eps=1e-7):
    """U Vᵀ of G = U S Vᵀ, roughly: a Newton-Schulz iteration (Keller Jordan's quintic) takes each singular
    value, scaled to at most 1, close to 1. It runs in fp32, which every CPU computes natively."""
    X = G.float()
    X = X.T if G.size(0) > G.size(1) else X  # (m, n), m <= n: the smaller Gram matrix
    X = X / X.norm().clamp(min=eps)  # every singular value at most 1
    for _ in range(steps):
        A = X @ X.T  # (m, m)
        X = 3.4445 * X + (-4.7750 * A + 2.0315 * A @ A) @ X  # (m, n)
    return X.T if G.size(0) > G.size(1) else X

class Muon(torch.optim.Optimizer):
    """Momentum whose update is orthogonalised, so that every direction of a matrix moves alike; decoupled
    weight decay; each step scaled to the size of an AdamW step, so that AdamW's learning rate fits it too."""

    def __init__(self, params, lr, weight_decay, momentum=0.95):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                state["momentum_buffer"].lerp_(p.grad, 1 - group["momentum"])  # a running mean of gradients
                update = orthogonalise(p.grad.lerp(state["momentum_buffer"], group["momentum"]))  # Nesterov
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update, alpha=-group["lr"] * 0.2 * max(p.shape) ** 0.5)

def make_optimizers(model):
    """AdamW with nanoGPT's betas, fused, decaying matrices and embeddings but not LayerNorm's gains. With
    --muon, Muon takes the blocks' matrices; embeddings and head stay with AdamW, as Muon's authors advise."""
    hidden = [p for n, p in model.named_parameters() if hp.muon and n.startswith("blocks.") and p.dim() == 2]
    rest = [p for p in model.parameters() if all(p is not h for h in hidden)]
    groups = [{"params": [p for p in rest if p.dim() >= 2], "weight_decay": hp.weight_decay},
              {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0}]
    optimizers = [torch.optim.AdamW(groups, lr=hp.learning_rate, betas=(0.9, 0.95), fused=True)]
    if hidden:
        optimizers.append(Muon(hidden, lr=hp.learning_rate, weight_decay=hp.weight_decay))
    return optimizers

def get_lr(step, fraction):
    """Warmup-stable-decay: a linear warmup, learning_rate held, then a linear decay to min_lr at the end."""
    if step < hp.warmup_iters:
        return hp.learning_rate * (step + 1) / hp.warmup_iters
    decay_start = 1 - hp.cooldown_frac  # the fraction of the budget where the decay begins
    if fraction <= decay_start:
        return hp.learning_rate
    decayed = min((fraction - decay_start) / hp.cooldown_frac, 1.0)  # from 0 where it begins to 1 at the end
    return hp.learning_rate + decayed * (hp.min_lr - hp.learning_rate)

# ----------------------------------------------------------------------------- train
def train(raw_model, optimizers, ckpt, step, elapsed):
    """The lecture's loop: draw a batch, compute the loss, backpropagate, update; now and then, evaluate."""
    progress = Progress(elapsed, ckpt)  # the clock (compiling counts), log lines, Ctrl-C (plumbing)
    model = for_training(raw_model)  # compiled, and in DDP under torchrun, as nanoGPT's model (plumbing)
    with progress:  # Ctrl-C or SIGTERM: finish at the next step boundary
        while True:
            elapsed, stopping = progress.poll(step)  # every rank agrees, so none waits forever
            fraction = budget_spent(step, elapsed, hp)  # by steps or by time, whichever is further along
            last = step >= hp.max_iters or fraction >= 1 or stopping
            if MASTER and (step % hp.eval_interval == 0 or (last and not stopping)):  # MASTER: process 0 (plumbing)
                losses = estimate_loss(raw_model)
                saved = ckpt.save_if_best(step, losses["val"], elapsed)
                what = f"train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                progress.print_line(step, what + (", saved" if saved else ""))  # with speed and time (plumbing)
            if last:
                ckpt.save_last(step, elapsed)  # the state that --resume goes on from (plumbing)
                return step
            if MASTER and ckpt.cooldown is None and fraction > 1 - hp.cooldown_frac:
                ckpt.cooldown = ckpt.state(step, elapsed)  # where the decay begins: a longer run branches here

            lr = get_lr(step, fraction)
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = lr
            xb, yb = get_batch("train", hp.batch_size // WORLD_SIZE)  # each process its share (plumbing)
            with autocast(xb.device):  # bf16 on a GPU that has it, fp32 elsewhere (plumbing)
                _, loss = model(xb, yb)
            raw_model.zero_grad(set_to_none=True)
            loss.backward()  # under torchrun this also averages the gradients of all processes
            if hp.grad_clip:
                torch.nn.utils.clip_grad_norm_(raw_model.parameters(), hp.grad_clip)
            for optimizer in optimizers:
                optimizer.step()
            step += 1
            if step % hp.log_interval == 0:
                progress.log_step(step, loss, lr)  # reads the loss from the device; a NaN loss stops the run

# ----------------------------------------------------------------------------- main
def main(argv=None):
    """What `python gpt.py` does: train, report the final val loss and write a sample (--sample: only write).
    It returns model, encode, decode, chars, step and val_loss for the next cell (--sample: the first 4)."""
    global hp
    started = time.time()
    with one_line_errors():  # a bad input or setting ends with one line and exit status 2 (plumbing)
        hp, device, overrides, resumed = configure(argv)  # resumed: --resume's checkpoint, read once
        hp = size_for_budget(hp, device, overrides)  # on a CPU or mps, the model that max_time buys here (plumbing)
        torch.manual_seed(hp.seed + RANK)  # each rank draws its own batches; DDP copies rank 0's weights
        if hp.sample:
            return sample_checkpoint(device)
        download = "input" not in overrides and resumed is None  # only the default text, tiny-shakespeare
        chars = load_data(find_text(hp.input, download_if_missing=download), device)
        print0(f"text: {hp.input}, {len(train_data) + len(val_data):,} characters, vocabulary of {len(chars)}: "
               f"{show_vocab(chars)}")
        encode, decode = tokenizer(chars)
        prompt = sample_prompt(chars)  # what the sample at the end continues, checked now (plumbing)
        config = GPTConfig(len(chars), hp.block_size, hp.n_layer, hp.n_head, hp.n_embd, hp.dropout)
        model = GPT(config).to(device)
        optimizers = make_optimizers(model)
        ckpt = Checkpoint(hp.ckpt_path, model, optimizers, chars)  # the best model so far, and what resumes
        step, elapsed = ckpt.resume(resumed)  # with --resume, the state of the run it goes on with; else 0, 0.0
        describe(device, overrides, model)
        with distributed(device):  # torchrun: join the other processes, and leave together (plumbing)
            step = train(model, optimizers, ckpt, step, elapsed)
        result = SimpleNamespace(model=model, encode=encode, decode=decode, chars=chars, step=step)
        if MASTER:  # the best checkpoint's loss on the validation split, then a sample from it
            source = ckpt.load_best(model, step)  # the best weights into the model, which main() returns
            result.val_loss = final_loss(model, source)
            print(f"total time {clock(time.time() - started)}; a sample from the best checkpoint:")
            write_sample(model, prompt, encode, decode)  # model.generate, printing each character as it comes
        return result

# ---- plumbing: settings, files, processes, signals and log lines; skip it on a first read
@dataclass
class Settings(Hyperparameters):
    """How to run (device, files, sampling); --resume takes these from the command line, the rest from its file."""
    device: str = setting("auto", "cuda, cuda:N, mps or cpu; auto picks cuda, then mps, then cpu")
    compile: bool = setting(True, "torch.compile the model; it falls back to eager if compiling fails")
    ckpt_path: str = setting("gpt.pt", "the best model by val loss, and the state --resume goes on from")
    resume: bool = setting(False, "go on with ckpt_path's run, with its settings except those named here")
    sample: bool = setting(False, "only write text from ckpt_path, no training")
    prompt: str = setting("", "the text a sample continues (empty: a newline, if the text has one)")
    max_new_tokens: int = setting(500, "characters to write")
    temperature: float = setting(1.0, "< 1 is more conservative, > 1 more adventurous, 0 the likeliest")
    top_k: int = setting(0, "sample among the k likeliest characters only (0: all)")

RANK = int(os.environ.get("RANK", 0))  # this process's number, set by torchrun
WORLD_SIZE = int(os.environ.get("WORLD_SIZE", 1))  # how many processes torchrun started
MASTER = RANK == 0  # the process that evaluates, saves, prints and writes

class UsageError(Exception):
    """A bad input or setting: reported as one line on stderr with exit status 2, never a traceback."""

@contextmanager
def one_line_errors():
    try:
        yield
    except UsageError as e:
        if MASTER:  # under torchrun every rank fails alike; one says so
            print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except SystemExit as e:
        if e.code:  # --help ends with status 0, which in a notebook only prints
            raise

print0 = print if MASTER else lambda message: None  # under torchrun, process 0 alone prints

def configure(argv):
    """The command line's settings (--name=value per field) over the device's defaults and the local paths."""
    if argv is None:  # a script's own, not a pasted cell's or an importer's (the kernel's: -f kernel.json)
        argv = sys.argv[1:] if __name__ == "__main__" and "__file__" in globals() else []
    elif argv and os.path.basename(argv[0]) == os.path.basename(globals().get("__file__", "gpt.py")):
        argv = argv[1:]  # main(["gpt.py", ...]) as well as main([...])
    parser = argparse.ArgumentParser(prog="gpt.py", usage="%(prog)s [--name=value ...]", allow_abbrev=False)
    cuda = {f.name: f.metadata["cuda"] for f in fields(Settings) if "cuda" in f.metadata}
    for f in fields(Settings):
        flag = {"nargs": "?", "const": True} if f.type is bool else {}  # a bare --flag is true
        on_cuda = f", cuda: {cuda[f.name]!r}" if f.name in cuda else ""
        parser.add_argument(f"--{f.name}", type={bool: boolean, int: integer}.get(f.type, f.type), **flag,
                            default=argparse.SUPPRESS, metavar=f.type.__name__.upper(),
                            help=f"{f.metadata['help']} (default: {f.default!r}{on_cuda})")
    overrides = vars(parser.parse_args(argv))
    device = pick_device(overrides.get("device", "auto"))
    here = Path(globals().get("__file__", "gpt.py")).resolve().parent  # a notebook has no __file__
    paths = {key: str(here / getattr(Settings, key)) for key in ("input", "ckpt_path")}
    settings = Settings(**{**(cuda if device.startswith("cuda") else {}), **paths, **overrides})
    resumed = None
    if settings.resume and not settings.sample:
        resumed = load_checkpoint(settings.ckpt_path)[0]
        settings = resumed_settings(settings, overrides, resumed)
    check(settings)
    torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls on a GPU
    torch.backends.cudnn.allow_tf32 = True
    return settings, device, overrides, resumed

def resumed_settings(settings, overrides, resumed):
    """The checkpoint's run goes on with its own settings, except those the command line names; its shape
    is the checkpoint's in any case, since its weights fit no other."""
    shape = {key: resumed["config"][key] for key in ("block_size", "n_layer", "n_head", "n_embd")}
    known = {f.name for f in fields(Hyperparameters)}  # not the options of Settings
    saved = {key: value for key, value in resumed["hparams"].items() if key in known}
    changed = [f"{key} {saved[key]!r} -> {value!r}" for key, value in overrides.items()
               if key in saved and key not in shape and saved[key] != value]
    ignored = [f"--{key}={overrides[key]}" for key in shape if overrides.get(key, shape[key]) != shape[key]]
    last = resumed["last"]
    print0(f"resuming {settings.ckpt_path} at step {last['step']} ({last['elapsed']:.0f} s), best val loss "
           f"{resumed['best_val_loss']:.4f}; the command line changes {', '.join(changed) or 'nothing'}")
    if ignored:
        print0(f"the model keeps the checkpoint's shape ({shape}), not {' '.join(ignored)}")
    return replace(settings, **{**saved, **overrides, **shape})

SIZES = (  # seconds of the reference machine (the README's) -> what they buy on a CPU or mps
    (0, {"n_layer": 3, "n_head": 3, "n_embd": 96, "weight_decay": 0.3}),  # a smaller model learns faster
    (400, {}),  # the defaults
    (800, {"n_layer": 6}),  # a deeper model learns more from the same text once the budget affords its steps
)
REFERENCE_SPEED = 30_000  # characters a second through probe_speed on the reference machine

def size_for_budget(settings, device, overrides):
    """On a CPU or mps, the model that max_time buys: a probe measures this machine against the reference one,
    and SIZES gives the settings for that many of its seconds. A shape named on the command line, --resume,
    --sample, --max_time=0 and torchrun choose nothing; other settings named are kept."""
    named = any(key in overrides for key in ("n_layer", "n_head", "n_embd", "block_size", "batch_size"))
    fixed = settings.resume or settings.sample or not settings.max_time or device.startswith("cuda")
    if named or fixed or WORLD_SIZE > 1:  # under torchrun every process must train the same model
        return settings
    speed = probe_speed(torch.device(device))
    seconds = settings.max_time * speed / REFERENCE_SPEED
    chosen = {}
    for least, row in SIZES:
        if seconds >= least:
            chosen = {key: value for key, value in row.items() if key not in overrides}
    print0(f"probe: {speed / 1e3:.1f}k characters/s, {speed / REFERENCE_SPEED:.2f} times the reference machine: "
           f"{settings.max_time:g} s buy {seconds:.0f} of its seconds, so {chosen or 'the defaults'}")
    return replace(settings, **chosen)

def probe_speed(device, rounds=5, steps=3):
    """Characters a second through eager training steps of a small model on random characters: the fastest of
    a few rounds, the one that the machine's other work disturbed least."""
    gpu = [] if device.type == "cpu" else [device]
    with torch.random.fork_rng(devices=gpu, device_type=device.type):
        model = GPT(GPTConfig(65, 256, 3, 3, 96)).to(device)
        x = torch.randint(65, (8, 256), device=device)  # (B, T)
        fastest = math.inf
        for i in range(rounds + 1):  # the first round warms up
            t0 = time.time()
            for _ in range(steps):
                _, loss = model(x, x)
                loss.backward()
            loss.item()  # waits for the device
            if i > 0:
                fastest = min(fastest, time.time() - t0)
        return steps * x.numel() / fastest

def budget_spent(step, elapsed, s):
    by_time = elapsed / s.max_time if s.max_time else 0.0
    return max(step / max(s.max_iters, 1), by_time)

def integer(text):  # 1e4 is 10000, as nanoGPT's configurator reads it; 2.5 is refused
    return int(float(text)) if "e" in text.lower() and float(text).is_integer() else int(text)

def boolean(text):  # true, false, 1 or 0
    if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(text)  # argparse says: invalid boolean value
    return text.lower() in ("true", "1")

def check(s):
    """Settings that would fail later, or silently do the wrong thing, are refused here."""
    positive = ("batch_size", "block_size", "n_embd", "n_head", "n_layer", "eval_interval", "eval_iters",
                "log_interval")  # the other numbers may be 0
    for f in fields(s):
        value = getattr(s, f.name)
        least = 1 if f.name in positive else 0
        if f.type in (int, float) and not (math.isfinite(value) and value >= least):
            raise UsageError(f"--{f.name} must be a finite number >= {least}, not {value}")
    if s.dropout >= 1 or not 0 < s.cooldown_frac <= 1:
        raise UsageError(f"--dropout={s.dropout} must be below 1, --cooldown_frac={s.cooldown_frac} in (0,1]")
    if s.n_embd % s.n_head or (s.n_embd // s.n_head) % 2:
        raise UsageError(f"--n_embd={s.n_embd} must split into --n_head={s.n_head} heads of an even width "
                         f"(rotary embeddings turn pairs of numbers); e.g. --n_embd={s.n_head * 32}")
    if s.batch_size % WORLD_SIZE:
        raise UsageError(f"--batch_size={s.batch_size} must divide evenly over {WORLD_SIZE} processes")

def pick_device(name):
    """cuda, then mps, then cpu; one named must exist. Under torchrun each process takes its own GPU."""
    usable = []
    if torch.cuda.is_available():
        usable += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        usable += ["mps"]
    usable += ["cpu"]
    name = usable[0] if name == "auto" else name
    if name not in usable:
        raise UsageError(f"--device={name} is not available here; usable: auto, {', '.join(usable)}")
    if WORLD_SIZE > 1 and name.startswith("cuda:"):
        raise UsageError(f"--device={name}: under torchrun each process takes the GPU of its LOCAL_RANK; "
                         "use --device=cuda, with CUDA_VISIBLE_DEVICES to choose the GPUs")
    if WORLD_SIZE > 1 and name == "cuda":
        name = f"cuda:{os.environ['LOCAL_RANK']}"  # this process's GPU on its machine
    if name.startswith("cuda:"):
        torch.cuda.set_device(name)  # the current device, whose random generator a checkpoint keeps
    return name

def autocast(device):
    """bf16 on a GPU that computes it natively; other GPUs, and CPUs, train in fp32."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()

TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"  # its sha256

def find_text(path, download_if_missing):
    """The text's path, checked; a missing default is downloaded, and kept only if it is tiny-shakespeare."""
    if download_if_missing and not os.path.exists(path):
        import urllib.request
        print(f"{path} not found; downloading tiny-shakespeare from {TINY_SHAKESPEARE_URL}")
        try:
            raw = urllib.request.urlopen(TINY_SHAKESPEARE_URL, timeout=60).read()  # read() closes it
        except Exception as e:
            raise UsageError(f"{path} is missing and downloading {TINY_SHAKESPEARE_URL} failed ({e}); "
                             "download it there by hand, or train on any text with --input=PATH") from None
        if hashlib.sha256(raw).hexdigest() != TINY_SHAKESPEARE:
            raise UsageError(f"{TINY_SHAKESPEARE_URL} did not give tiny-shakespeare ({len(raw):,} bytes, "
                             f"whose sha256 is not {TINY_SHAKESPEARE[:12]}…); nothing was kept")
        with tempfile.NamedTemporaryFile(dir=os.path.dirname(os.path.abspath(path)), delete=False) as f:
            f.write(raw)
        os.chmod(f.name, 0o644)  # a temporary file is its owner's alone; a text is read like any file
        os.replace(f.name, path)  # renamed only once whole
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        what = ("is empty (0 characters)" if os.path.isfile(path) else "is a folder" if os.path.isdir(path)
                else "is not a regular file" if os.path.exists(path) else "not found")
        raise UsageError(f"input file {path} {what} (--input=PATH names the text to train on)")
    return path

def code_points(path, piece=1 << 22):
    """The text's code points (int32), a piece at a time, read as the lecture's open() reads it (CR LF as LF)."""
    with open(path, encoding="utf-8") as f:
        try:
            for text in iter(lambda: f.read(piece), ""):  # a character cut between two reads is kept whole
                yield torch.frombuffer(bytearray(text.encode("utf-32")), dtype=torch.int32)[1:]  # after the BOM
        except UnicodeDecodeError as e:
            at = f.buffer.tell() - len(e.object) + e.start  # the bytes it decodes are the last read
            raise UsageError(f"{path} is not UTF-8 text (byte {at:,} is {e.object[e.start]:#04x}); "
                             "convert it, e.g. iconv -t UTF-8") from None

@torch.no_grad()
def split_loss(model, data, rows=16):
    """The loss over a split's first eval_chars characters: every full window, each character once."""
    model.eval()
    n = max((min(len(data), hp.eval_chars + 1) - 1) // hp.block_size, 1)  # whole windows, one at least
    x = data[:n * hp.block_size].view(n, hp.block_size).long()  # (n, T): whole windows, side by side
    y = data[1:n * hp.block_size + 1].view(n, hp.block_size).long()  # (n, T): the characters that follow
    losses = [model(xb, yb)[1].float() * len(xb) for xb, yb in zip(x.split(rows), y.split(rows))]
    model.train()
    return sum(losses).item() / n

def show_vocab(chars, limit=100):
    s = "".join(chars)
    return repr(s) if len(s) <= limit else repr(s[:limit]) + f"... ({len(s) - limit} more)"

def describe(device, overrides, model):
    why = "the lecture's size" if device.startswith("cuda") else "the small default of a CPU or mps"
    bf16 = isinstance(autocast(torch.device(device)), torch.autocast)
    print0(f"device {device}: {why}, bf16 {bf16}; overridden: {', '.join(sorted(overrides)) or 'nothing'}")
    print0(f"model: {hp.n_layer} layers, {hp.n_head} heads, {hp.n_embd} wide, block {hp.block_size}, dropout "
           f"{hp.dropout}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    budget = f"{hp.max_iters:,} steps" + (f" or {hp.max_time:g} s, whichever ends first" if hp.max_time else "")
    optimiser = "Muon for the blocks' matrices, AdamW for the rest" if hp.muon else "AdamW"
    split = f", split over {WORLD_SIZE} processes ({hp.batch_size // WORLD_SIZE} each)" if WORLD_SIZE > 1 else ""
    print0(f"batch: {hp.batch_size} x {hp.block_size} = {hp.batch_size * hp.block_size:,} tokens per step{split}; "
           f"{budget}; {optimiser}")

def final_loss(model, source):
    """The model's loss on the validation split, printed with where its weights come from."""
    val_loss = split_loss(model, val_data)
    note = f", its first {hp.eval_chars:,} characters" if len(val_data) > hp.eval_chars + 1 else ""
    print(f"best checkpoint: {source}; on the validation split{note}:")
    print(f"final val loss {val_loss:.4f}")
    return val_loss

def write_sample(model, prompt, encode, decode):
    """Stream max_new_tokens characters after the prompt to stdout, each as soon as it is sampled."""
    torch.manual_seed(hp.seed)  # the same seed writes the same text
    idx = torch.tensor([encode(prompt)], dtype=torch.long, device=model.lm_head.weight.device)  # (1, T)
    print(prompt, end="", flush=True)
    for _ in range(hp.max_new_tokens):
        idx = model.generate(idx, 1, hp.temperature, hp.top_k)  # (1, T+1)
        print(decode([idx[0, -1].item()]), end="", flush=True)
    print()

def sample_prompt(chars):
    """The text a sample continues: --prompt, else a newline (or a text's first character if it has none)."""
    prompt = hp.prompt
    if not prompt:
        prompt = "\n" if "\n" in chars else chars[0]
    unknown = sorted(set(prompt) - set(chars))
    if unknown:
        raise UsageError(f"the prompt has characters the model never saw: {''.join(unknown)!r}; "
                         f"it knows {show_vocab(chars)}")
    return prompt

def sample_checkpoint(device):
    checkpoint, model = load_checkpoint(hp.ckpt_path)
    chars = checkpoint["chars"]
    model = model.to(device)
    encode, decode = tokenizer(chars)
    if MASTER:  # under torchrun the text is written once
        write_sample(model, sample_prompt(chars), encode, decode)
    return SimpleNamespace(model=model, encode=encode, decode=decode, chars=chars)

def load_checkpoint(path):
    """path's checkpoint, and a model with its best weights; weights_only: loading runs no code."""
    if not os.path.isfile(path):
        raise UsageError(f"no checkpoint at {path}; train one with `python gpt.py` (or set --ckpt_path)")
    keys = ("model", "config", "chars", "hparams", "step", "best_val_loss", "last", "cooldown")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        missing = [key for key in keys if key not in checkpoint]
    except Exception as e:
        raise UsageError(f"{path} is not a checkpoint that gpt.py wrote, or it was cut short "
                         f"({type(e).__name__}); --ckpt_path names the checkpoint") from None
    if missing:
        raise UsageError(f"checkpoint {path} lacks {', '.join(missing)}; train one with `python gpt.py`")
    try:  # the training states' weights have the same shapes as these
        model = GPT(GPTConfig(**checkpoint["config"]))
        model.load_state_dict(checkpoint["model"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        detail = str(e).strip().splitlines()[-1].strip()[:160]  # the last line names the tensor
        raise UsageError(f"checkpoint {path} does not fit the model it describes ({detail}); it was written "
                         "by another version of gpt.py: train again") from None
    return checkpoint, model

def file_identity(path):
    """What tells a file from another written at the same path: its inode, size and time (None: no file)."""
    if not os.path.exists(path):
        return None
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

class Checkpoint:
    """One file: the best weights so far, by val loss, and the training state that --resume goes on from (the
    run's last, and where its decay began). A file this run did not write is kept, as gpt.1.pt, ..."""

    def __init__(self, path, model, optimizers, chars):
        self.path = Path(path)
        self.model = model
        self.optimizers = optimizers
        self.chars = chars
        self.best = None  # the best weights so far, with their step and val estimate
        self.best_val = math.inf
        self.cooldown = None  # the training state where the decay began
        self.written = None  # the file_identity of what this run wrote or resumed last
        self.saved_at = None  # the step of the training state in the file
        if not path or self.path.is_dir():
            raise UsageError(f"--ckpt_path={path!r} must name a file, not a folder")
        try:  # a folder that cannot be made or written to stops the run now, not after the first evaluation
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=self.path.parent).close()
        except OSError as e:
            raise UsageError(f"--ckpt_path={path} cannot be written ({e.strerror})") from None

    def resume(self, resumed):
        """Go on from the run's last state; or, where a longer budget moves the decay later, from the state
        where the decay began, so that the learning rate never jumps up. Returns its step and seconds."""
        if resumed is None:  # a new run starts at the first step, with no time spent
            return 0, 0.0
        if resumed["chars"] != self.chars:  # before the weights: another vocabulary size would not fit
            new = show_vocab(sorted(set(self.chars) - set(resumed["chars"])))
            gone = show_vocab(sorted(set(resumed["chars"]) - set(self.chars)))
            raise UsageError(f"the text's vocabulary is not the checkpoint's (new: {new}, missing: {gone}); "
                             "resume on the text it was trained on")
        last = resumed["last"]
        spent_before = budget_spent(last["step"], last["elapsed"], SimpleNamespace(**resumed["hparams"]))
        longer = budget_spent(last["step"], last["elapsed"], hp) < spent_before
        state = resumed["cooldown"] if longer and resumed["cooldown"] else last
        if len(state["optimizer"]) != len(self.optimizers):  # AdamW's state, and Muon's if --muon
            raise UsageError(f"checkpoint {self.path} was trained with --muon={not hp.muon}; resume so")
        self.model.load_state_dict(state["model"])
        for optimizer, optimizer_state in zip(self.optimizers, state["optimizer"]):
            optimizer.load_state_dict(optimizer_state)
        device = self.model.lm_head.weight.device.type
        for kind, rng_state in state["rng"].items():  # the batches go on where they were
            if kind in ("cpu", device):
                random_generators(kind).set_rng_state(rng_state)
        if RANK > 0:  # the checkpoint holds process 0's generators; the others draw anew
            torch.manual_seed(hp.seed + RANK + state["step"])
        if state is last:
            self.cooldown = resumed["cooldown"]
        else:
            print0(f"the longer budget moves the decay later: going on from step {state['step']}, where it began")
        self.best = {key: resumed[key] for key in ("model", "step", "best_val_loss")}
        self.best_val = resumed["best_val_loss"]
        self.written = file_identity(self.path)
        return state["step"], state["elapsed"]

    def state(self, step, elapsed):
        """A copy of what the next step needs: weights, optimiser states, random generators, step, clock."""
        device = self.model.lm_head.weight.device.type
        kinds = ["cpu"] if device == "cpu" else ["cpu", device]
        rng = {kind: random_generators(kind).get_rng_state() for kind in kinds}
        optimizers = [optimizer.state_dict() for optimizer in self.optimizers]
        state = {"model": self.model.state_dict(), "optimizer": optimizers, "rng": rng, "step": step,
                 "elapsed": elapsed}
        return copy.deepcopy(state)

    def save_if_best(self, step, val, elapsed):
        """The weights become the best model if their val estimate is the lowest yet (never if NaN)."""
        if not val < self.best_val:
            return False
        state = self.state(step, elapsed)
        self.best = {"model": state["model"], "step": step, "best_val_loss": val}
        self.best_val = val
        self.write(state)
        return True

    def save_last(self, step, elapsed):
        """At the run's end: its last state beside the best weights, for --resume to go on from."""
        if MASTER and self.best and self.saved_at != step:
            self.write(self.state(step, elapsed))

    def load_best(self, model, step):
        """The best weights so far into model, and what they are; the last step's if none was ever saved."""
        if self.best is None:
            return f"step {step} (the last step's weights: this run's checkpoint is not there)"
        model.load_state_dict(self.best["model"])
        return f"step {self.best['step']} ({self.path})"

    def write(self, state):
        """Through a temporary file beside it, renamed over the old one: a crash leaves that one whole."""
        if file_identity(self.path) not in (None, self.written):
            n = 1
            while self.path.with_suffix(f".{n}{self.path.suffix}").exists():
                n += 1
            kept = self.path.rename(self.path.with_suffix(f".{n}{self.path.suffix}"))
            print(f"{self.path} holds a checkpoint this run did not write: it is kept as {kept}")
        contents = {**self.best, "last": state, "cooldown": self.cooldown, "chars": self.chars,
                    "config": asdict(self.model.config), "hparams": asdict(hp)}
        f = tempfile.NamedTemporaryFile(dir=self.path.parent, prefix=self.path.name, suffix=".tmp", delete=False)
        try:
            with f:
                torch.save(contents, f)
            os.chmod(f.name, 0o644)  # a temporary file is its owner's alone; a checkpoint is read like any file
            os.replace(f.name, self.path)
        finally:
            if os.path.exists(f.name):
                os.remove(f.name)
        self.written = file_identity(self.path)
        self.saved_at = state["step"]

def random_generators(kind):
    """The module that holds the random generator of a kind of device: torch.random for the CPU."""
    return torch.random if kind == "cpu" else torch.get_device_module(kind)

@contextmanager
def distributed(device):
    """Under torchrun: join the other processes (nccl on GPUs, gloo on CPUs) and leave together at the end."""
    if WORLD_SIZE > 1:
        torch.distributed.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    try:
        yield
    except BaseException as e:
        if WORLD_SIZE > 1:  # the error's frames hold the DDP wrapper, which must go before the group does
            traceback.clear_frames(e.__traceback__)
        raise
    finally:
        if WORLD_SIZE > 1:
            torch.distributed.destroy_process_group()

def for_training(model):
    """The module the loop calls: compiled where torch.compile works, and in DDP under torchrun."""
    t0 = time.time()
    device = model.lm_head.weight.device
    fast = model
    if hp.compile:
        try:  # a warm-up on a batch like the loop's, so that the loop does not compile again
            candidate = torch.compile(model)
            gpu = [] if device.type == "cpu" else [device]
            with torch.random.fork_rng(devices=gpu, device_type=device.type), autocast(device):
                _, loss = candidate(*get_batch("train", hp.batch_size // WORLD_SIZE))
            loss.backward()  # the backward graph compiles too; the loop's zero_grad drops these gradients
            fast = candidate
            print0(f"compiled in {time.time() - t0:.1f} s")
        except Exception as e:
            print0(f"torch.compile failed ({type(e).__name__}: {str(e).strip().splitlines()[0][:100]}); "
                   "training eager (--compile=false skips this)")
    if WORLD_SIZE > 1:  # broadcast_buffers=False: the only buffers, the rotary tables, never change
        return torch.nn.parallel.DistributedDataParallel(fast, broadcast_buffers=False)
    return fast

def clock(seconds):
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"

class Progress:
    """The run's clock (compiling counts), its progress lines, and its end: budget, Ctrl-C or SIGTERM."""

    def __init__(self, elapsed, ckpt):
        self.t0 = time.time() - elapsed  # the run's start, on this clock
        self.ckpt = ckpt
        self.signal = 0  # the number of the signal that asks to stop, if one came
        self.handlers = {}  # the signal handlers this one replaced
        self.since = None  # the time and step the speed is measured from
        self.dt = None  # seconds per step

    def __enter__(self):  # the handlers are the loop's alone; Python allows them only in the main thread
        if threading.current_thread() is threading.main_thread():
            self.handlers = {s: signal.signal(s, self.interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *error):  # a notebook gets its usual Ctrl-C back
        for s, handler in self.handlers.items():
            signal.signal(s, handler)

    def interrupt(self, signum, frame):
        if self.signal and WORLD_SIZE == 1:  # a second one stops at once
            raise KeyboardInterrupt
        self.signal = signum  # a number, so that every process can agree on it

    def poll(self, step):
        """The seconds elapsed and whether a signal asks to stop, the same on every process."""
        if self.since is None:  # the speed counts from the first step, compiled
            self.since = (time.time(), step)
        agreed = torch.tensor([time.time() - self.t0, float(self.signal)])
        if WORLD_SIZE > 1:  # every process takes the same schedule and stops at the same step
            agreed = agreed.to(self.ckpt.model.lm_head.weight.device)
            torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
        elapsed, stopping = agreed.tolist()
        if stopping:
            print0(f"\ninterrupted by {signal.Signals(int(stopping)).name}: finishing with the best checkpoint")
        return elapsed, stopping > 0

    def log_step(self, step, loss, lr):
        loss = loss.detach().float()
        if WORLD_SIZE > 1:  # the mean over all processes
            torch.distributed.all_reduce(loss)
            loss /= WORLD_SIZE
        if not math.isfinite(loss.item()):
            raise UsageError(f"the loss became {loss.item()} at step {step}; {hp.ckpt_path} keeps val "
                             f"{self.ckpt.best_val:.4f}; try a lower --learning_rate than {hp.learning_rate}")
        self.dt = (time.time() - self.since[0]) / (step - self.since[1])
        self.print_line(step, f"loss {loss.item():.4f} | lr {lr:.2e}")

    def print_line(self, step, what):
        elapsed = time.time() - self.t0
        speed = "speed not measured yet"
        left = hp.max_time - elapsed if hp.max_time else math.inf
        if self.dt:
            speed = f"{self.dt * 1e3:.0f} ms/step, {hp.batch_size * hp.block_size / self.dt / 1e3:.1f}k tok/s"
            left = min(left, (hp.max_iters - step) * self.dt)
        time_left = f"~{clock(max(left, 0))} left" if left < math.inf else "time left unknown"
        print0(f"step {step}: {what} | {speed} | {clock(elapsed)} elapsed, {time_left}")
        self.since = (time.time(), step)  # the next speed counts from here: evaluations left out

if __name__ == "__main__":
    result = main()  # under %run, result stays in the notebook
