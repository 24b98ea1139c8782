"""gpt.py: a character-level GPT written from scratch in one file, after Andrej Karpathy's lecture "Let's
build GPT: from scratch, in code, spelled out" and nanoGPT: masked multi-head attention, feed-forward layers,
residual connections and LayerNorm learn to predict each next character. bigram.py is the baseline; the
README says where this departs from the lecture, and what each change gained.

    python gpt.py                                 train (a CPU or a GPU default, by device), then write
    python gpt.py --max_iters=500 --device=cpu    override any setting; --help lists them all
    python gpt.py --input=my_text.txt             train on any UTF-8 text, in any alphabet
    python gpt.py --sample --prompt="ROMEO:"      write from the saved checkpoint, no training
    python gpt.py --resume --max_time=600         continue from the checkpoint, to 600 s in all
    torchrun --standalone --nproc_per_node=2 gpt.py   data-parallel training on 2 processes (or GPUs)
In a notebook: %run gpt.py --max_iters=500, or paste the file into a cell ending in result = main([...]); then
result.model, result.encode and result.decode are at hand. "# ---- plumbing" starts what serves the rest.
"""
import argparse
import codecs
import hashlib
import math
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
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
    # a CUDA GPU trains the lecture's model; a CPU (or mps) a small one, in a time budget
    batch_size: int = setting(8, "sequences per optimiser step, all processes together", cuda=64)
    block_size: int = setting(256, "context length: the characters the model sees")
    n_layer: int = setting(3, "transformer blocks", cuda=6)
    n_head: int = setting(3, "attention heads, each n_embd // n_head wide", cuda=6)
    n_embd: int = setting(96, "width of the residual stream", cuda=384)
    dropout: float = setting(0.0, "dropout on the embeddings, attention and residual branches", cuda=0.2)
    learning_rate: float = setting(1.5e-3, "peak learning rate, reached after the warmup", cuda=1e-3)
    min_lr: float = setting(1.5e-4, "the learning rate at the end of the budget", cuda=1e-4)
    max_iters: int = setting(100_000, "optimiser steps at most", cuda=1200)
    max_time: float = setting(280.0, "seconds at most, compile and evaluations included (0: none)", cuda=0.0)
    eval_interval: int = setting(500, "steps between train/val estimates; the last step has one", cuda=250)
    eval_iters: int = setting(10, "batches per estimate; the best estimate picks the checkpoint", cuda=50)
    log_interval: int = setting(100, "steps between progress lines", cuda=50)
    muon: bool = setting(True, "Muon for the blocks' matrices, AdamW for the rest (else AdamW)", cuda=False)
    warmup_iters: int = setting(100, "steps of linear warmup up to learning_rate")
    cooldown_frac: float = setting(0.5, "the end of the budget in which the learning rate decays to min_lr")
    weight_decay: float = setting(0.3, "decay of the weight matrices and embeddings")
    grad_clip: float = setting(1.0, "clip the gradient norm to this (0: off)")
    device: str = setting("auto", "cuda, cuda:N, mps or cpu; auto picks cuda, then mps, then cpu")
    compile: bool = setting(True, "torch.compile the model; it falls back to eager if compiling fails")
    seed: int = setting(1337, "seeds weights, batches and sample; a run repeats exactly with --max_time=0")
    input: str = setting("input.txt", "the UTF-8 text to train on; the default lives beside this file")
    eval_chars: int = setting(1_000_000, "the final validation loss reads at most this many characters")
    ckpt_path: str = setting("gpt.pt", "the best model so far, by val loss; by default beside this file")
    resume: bool = setting(False, "continue training from ckpt_path")
    sample: bool = setting(False, "only write text from ckpt_path, no training")
    prompt: str = setting("", "the text a sample continues (empty: a newline, if the text has one)")
    max_new_tokens: int = setting(500, "characters to write")
    temperature: float = setting(1.0, "< 1 is more conservative, > 1 more adventurous, 0 the likeliest")
    top_k: int = setting(0, "sample among the k likeliest characters only (0: all)")

hp = Hyperparameters()  # the run's settings: main() sets them for the device and from the command line
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
    """The lecture's data steps (chars = sorted(set(text)), torch.tensor(encode(text)), 90% to train on),
    the text read in pieces: a Python int per character, as encode(text) makes, is 16 GB for a 1 GB text."""
    global train_data, val_data
    counts = torch.zeros(0x110000, dtype=torch.long)  # how often each Unicode character is in the text
    for piece in code_points(path):  # (n,) int32: the next piece's characters, as numbers (plumbing)
        counts += torch.bincount(piece, minlength=len(counts))
    chars = [chr(c) for c in counts.nonzero().flatten().tolist()]  # sorted by code point
    # the smallest integer type that holds every id (a byte for up to 256 characters); get_batch widens it
    dtype = torch.uint8 if len(chars) <= 2**8 else torch.int16 if len(chars) <= 2**15 else torch.int32
    stoi = ((counts > 0).cumsum(0) - 1).to(dtype)  # the lecture's stoi as a table: how many come before
    data, i = torch.empty(counts.sum(), dtype=dtype), 0
    for piece in code_points(path):
        data[i:i + len(piece)] = stoi.index_select(0, piece)  # encode, a whole piece at a time
        i += len(piece)
    n = int(0.9 * len(data))
    if min(n, len(data) - n) <= hp.block_size + 1:
        raise UsageError(f"the text is too short for --block_size={hp.block_size}: its splits of {n:,} and "
                         f"{len(data) - n:,} characters must each be over {hp.block_size + 1}")
    train_data, val_data = data[:n].to(device), data[n:].to(device)
    return chars

def get_batch(split, batch_size, generator=None):
    """Random windows of block_size + 1 characters from one split: x is the first block_size of each, y the
    last block_size, so y[b, t] is the character that follows x[b, :t+1]. One gather, no loop over rows."""
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
    bigram_rows: int = 8191  # a prime, so that the pairs a large vocabulary puts in one row are unrelated

def attention_reference(q, k, v):
    """What F.scaled_dot_product_attention(q, k, v, is_causal=True) computes, written out as in the lecture.
    q, k, v: (B, nh, T, hs). The model calls the fused one; a test checks that they agree."""
    T, hs = q.size(-2), q.size(-1)
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
        self.n_head, self.dropout_p = n_head, dropout  # a probability, for scaled_dot_product_attention
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)  # query, key, value of every head at once
        self.c_proj = nn.Linear(n_embd, n_embd, bias=False)  # mixes the heads back into the residual stream
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # (B, T, C) each
        hs = C // self.n_head  # head size
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        # QK-norm: unit-RMS queries and keys bound the attention logits, so a high learning rate trains stably
        q, k = F.rms_norm(q, (hs,)), F.rms_norm(k, (hs,))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        # attention_reference in one kernel (flash attention on a GPU); dropout_p drops wei's entries
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
        # ReLU squared: the lecture's ReLU, squared, as in modded-nanogpt (chosen with rotary and QK-norm)
        return self.dropout(self.c_proj(F.relu(self.c_fc(x)).square()))  # (B, T, C)

class Block(nn.Module):
    """Communication (attention) then computation (feed-forward), each on a LayerNorm'd copy of the
    residual stream and added back to it (pre-norm), so gradients flow straight through the sums."""

    def __init__(self, n_embd, n_head, dropout):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.ffwd = FeedForward(n_embd, dropout)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.ln1(x), cos, sin)  # (B, T, C)
        return x + self.ffwd(self.ln2(x))  # (B, T, C)

class GPT(nn.Module):
    """The lecture's BigramLanguageModel grown into a GPT: embeddings of each character and of each bigram,
    n_layer blocks, a final LayerNorm and a linear head that scores every character as the next one."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.n_embd)
        # the bigram model's table as a feature: a vector per pair (previous character, this one), V + 1 by V
        # pairs counting a window's first character, whose previous one is unknown; rows are shared past 8191
        self.bigram_embedding_table = nn.Embedding(config.bigram_rows, config.n_embd)
        # positions enter as rotations of q and k (apply_rotary), not as a learned table added to the tokens
        cos, sin = rotary_tables(config.block_size, config.n_embd // config.n_head)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config.n_embd, config.n_head, config.dropout)
                                    for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # N(0, 0.02): the first logits are near zero, the loss near ln(vocab_size). The projections back into
        # the stream start at zero, each block as the identity (modded-nanogpt), and so do the pairs' vectors
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight") or name.startswith("bigram"):
                nn.init.zeros_(p)
            elif p.dim() == 2:
                nn.init.normal_(p, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        V = self.config.vocab_size
        prev = F.pad(idx[:, :-1], (1, 0), value=V)  # (B, T): the previous character; V: none, a window start
        pair = (prev * V + idx) % self.config.bigram_rows  # (B, T): a row per pair
        x = self.drop(self.token_embedding_table(idx) + self.bigram_embedding_table(pair))  # (B, T, C)
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]  # (T, hs/2)
        for block in self.blocks:
            x = block(x, cos, sin)  # (B, T, C)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        if targets is None:
            return logits, None
        # in fp32 even under bf16 autocast; targets may be a slice of a bigger tensor, hence reshape
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
    value, scaled to at most 1, to ~0.7-1.2. In fp32: most CPUs only emulate torch.optim.Muon's bf16."""
    X = G.float()
    X = X.T if G.size(0) > G.size(1) else X  # (m, n), m <= n: the smaller Gram matrix
    X = X / X.norm().clamp(min=eps)  # every singular value at most 1
    for _ in range(steps):
        A = X @ X.T  # (m, m)
        X = 3.4445 * X + (-4.7750 * A + 2.0315 * A @ A) @ X  # (m, n)
    return X.T if G.size(0) > G.size(1) else X

class Muon(torch.optim.Optimizer):
    """Momentum whose update is orthogonalised, so that every direction of a matrix moves alike; decoupled
    weight decay; the step scaled to an AdamW step's RMS (Moonshot's 0.2 √max(shape)), so AdamW's lr fits."""

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
    """Warmup-stable-decay: a linear warmup, learning_rate held, then a linear decay to min_lr over the last
    cooldown_frac of the budget; fraction: the budget spent, by steps or by time, whichever is further."""
    if step < hp.warmup_iters:
        return hp.learning_rate * (step + 1) / hp.warmup_iters
    cooldown = min(max((fraction - 1 + hp.cooldown_frac) / hp.cooldown_frac, 0.0), 1.0)  # 0 until it starts
    return hp.learning_rate + cooldown * (hp.min_lr - hp.learning_rate)

# ----------------------------------------------------------------------------- train
def train(model, optimizers, ckpt, step, elapsed):
    """The lecture's loop: draw a batch, compute the loss, backpropagate, update; every eval_interval steps
    and at the last, estimate both losses and keep the best model. Ends at max_iters, max_time or a signal."""
    progress = Progress(step, elapsed, ckpt)  # the clock (compiling counts), log lines, Ctrl-C (plumbing)
    train_model = for_training(model)  # torch.compile, and DDP under torchrun (plumbing)
    with progress:  # Ctrl-C or SIGTERM: finish at the next step boundary
        while True:
            last = progress.is_last(step)  # every rank agrees, so none waits forever
            if MASTER and (step % hp.eval_interval == 0 or last):  # MASTER: process 0 (plumbing)
                losses = estimate_loss(model)
                saved = ckpt.save_if_best(step, losses["val"], progress.elapsed)
                progress.line(step, f"train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                              + ", saved" * saved)  # with the speed, elapsed and time left (plumbing)
            if last:
                return step

            lr = get_lr(step, progress.fraction)  # the budget spent, by steps or by time
            for group in (group for optimizer in optimizers for group in optimizer.param_groups):
                group["lr"] = lr
            xb, yb = get_batch("train", hp.batch_size // WORLD_SIZE)  # each process its share (plumbing)
            with autocast(xb.device):  # bf16 on a GPU that has it, fp32 elsewhere (plumbing)
                _, loss = train_model(xb, yb)
            model.zero_grad(set_to_none=True)
            loss.backward()  # under torchrun this also averages the gradients of all processes
            if hp.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), hp.grad_clip)
            for optimizer in optimizers:
                optimizer.step()
            step += 1

            if step % hp.log_interval == 0:
                progress.log(step, loss, lr)  # reads the loss from the device; a NaN loss stops the run

# ----------------------------------------------------------------------------- main
def main(argv=None):
    """What `python gpt.py` does: train, report the final val loss and write a sample (--sample: only write).
    It returns model, encode, decode, chars, step and val_loss for the next cell (--sample: the first 4)."""
    global hp
    started = time.time()
    with one_line_errors():  # a bad input or setting ends with one line and exit status 2 (plumbing)
        hp, device, overrides = configure(argv)
        torch.manual_seed(hp.seed + RANK)  # each rank draws its own batches; DDP copies rank 0's weights
        if hp.sample:
            return sample_checkpoint(device)
        chars = load_data(find_text(hp.input, download_if_missing="input" not in overrides), device)
        log(f"text: {hp.input}, {len(train_data) + len(val_data):,} characters, vocabulary of {len(chars)}: "
            f"{show_vocab(chars)}")
        encode, decode = tokenizer(chars)
        prompt = sample_prompt(chars)  # what the sample at the end continues, checked now (plumbing)
        config = GPTConfig(len(chars), hp.block_size, hp.n_layer, hp.n_head, hp.n_embd, hp.dropout)
        model = GPT(config).to(device)
        optimizers = make_optimizers(model)
        ckpt = Checkpoint(hp.ckpt_path, model, optimizers, chars)  # with --resume: the checkpoint's state
        describe(device, overrides, model)
        with distributed(device):  # torchrun: join the other processes, and leave together (plumbing)
            step = train(model, optimizers, ckpt, *ckpt.start)  # from 0, or a checkpoint's step and clock
        result = SimpleNamespace(model=model, encode=encode, decode=decode, chars=chars, step=step)
        if MASTER:  # the best checkpoint's loss on the whole validation split, then a sample from it
            result.val_loss = final_loss(model, ckpt, step, started)
            write(model, prompt, encode, decode)  # model.generate, printing each character as it comes
        return result

# ---- plumbing: settings, files, processes, signals and log lines; skip it on a first read
RANK, WORLD_SIZE = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))  # set by torchrun
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

log = print if MASTER else lambda message: None  # under torchrun, process 0 alone prints

def configure(argv):
    """The command line's settings (--name=value per field) over the device's defaults and the local paths."""
    if argv is None:  # a script's own, not a pasted cell's or an importer's (the kernel's: -f kernel.json)
        argv = sys.argv[1:] if __name__ == "__main__" and "__file__" in globals() else []
    elif argv and argv[0].endswith(".py"):  # main(["gpt.py", ...]) as well as main([...])
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="gpt.py", usage="%(prog)s [--name=value ...]", allow_abbrev=False)
    cuda = {f.name: f.metadata["cuda"] for f in fields(Hyperparameters) if "cuda" in f.metadata}
    for f in fields(Hyperparameters):
        flag = {"nargs": "?", "const": True} if f.type is bool else {}  # a bare --flag is true
        on_cuda = f", cuda: {cuda[f.name]!r}" if f.name in cuda else ""
        parser.add_argument(f"--{f.name}", type={bool: boolean, int: integer}.get(f.type, f.type), **flag,
                            default=argparse.SUPPRESS, metavar=f.type.__name__.upper(),
                            help=f"{f.metadata['help']} (default: {f.default!r}{on_cuda})")
    overrides = vars(parser.parse_args(argv))
    device = pick_device(overrides.get("device", "auto"))
    here = os.path.dirname(os.path.abspath(globals().get("__file__", "gpt.py")))  # a notebook has no __file__
    paths = {key: os.path.join(here, getattr(Hyperparameters, key)) for key in ("input", "ckpt_path")}
    settings = Hyperparameters(**{**(cuda if device.startswith("cuda") else {}), **paths, **overrides})
    if settings.resume and not settings.sample:  # the checkpoint's weights fit only a model of its shape
        resumed, _ = load_checkpoint(settings.ckpt_path)
        shape = {key: resumed["config"][key] for key in ("block_size", "n_layer", "n_head", "n_embd")}
        ignored = " ".join(f"--{k}={overrides[k]}" for k in shape if overrides.get(k, shape[k]) != shape[k])
        log(f"resuming {settings.ckpt_path}: step {resumed['step']}, val loss {resumed['best_val_loss']:.4f}"
            + (f"; the model keeps the checkpoint's shape ({shape}), not {ignored}" if ignored else ""))
        settings = replace(settings, **shape)
    check(settings)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # TF32 matmuls on a GPU
    return settings, device, overrides

def integer(text):  # 1e4 is 10000, as nanoGPT's configurator reads it; 2.5 is refused
    return int(float(text)) if "e" in text.lower() and float(text).is_integer() else int(text)

def boolean(text):  # true, false, 1 or 0; index() refuses anything else with a ValueError
    return ("false", "true", "0", "1").index(text.lower()) % 2 == 1

def check(s):
    """Settings that would fail later, or silently do the wrong thing, are refused here."""
    positive = ("batch_size", "block_size", "n_embd", "n_head", "n_layer", "eval_interval", "eval_iters",
                "log_interval")  # the other numbers may be 0
    for f in fields(s):
        value, least = getattr(s, f.name), 1 if f.name in positive else 0
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
    usable = ["cuda"] * torch.cuda.is_available() + ["mps"] * torch.backends.mps.is_available() + ["cpu"]
    usable += [f"cuda:{i}" for i in range(torch.cuda.device_count() if "cuda" in usable else 0)]
    name = usable[0] if name == "auto" else name
    if name not in usable:
        raise UsageError(f"--device={name} is not available here; usable: auto, {', '.join(usable)}")
    if WORLD_SIZE > 1 and name.startswith("cuda:"):
        raise UsageError(f"--device={name}: under torchrun each process takes the GPU of its LOCAL_RANK; "
                         "use --device=cuda, with CUDA_VISIBLE_DEVICES to choose the GPUs")
    if WORLD_SIZE > 1 and name == "cuda":
        name = f"cuda:{os.environ['LOCAL_RANK']}"  # this process's GPU on its machine
        torch.cuda.set_device(name)
    return name

def autocast(device):
    """bf16 on a GPU that has it natively; a T4 or V100 only emulates it, slowly, so it trains in fp32."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()

TINY_SHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                        "tinyshakespeare/input.txt")
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
        with open(f"{path}.{os.getpid()}.part", "wb") as f:  # renamed only once whole
            f.write(raw)
        os.replace(f.name, path)
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        what = ("is empty (0 characters)" if os.path.isfile(path) else "is a folder" if os.path.isdir(path)
                else "is not a regular file" if os.path.exists(path) else "not found")
        raise UsageError(f"input file {path} {what} (--input=PATH names the text to train on)")
    return path

def code_points(path, piece=1 << 22):
    """The text in path, a piece (of at least 4 bytes) at a time: its characters' code points, as int32."""
    utf8 = codecs.getincrementaldecoder("utf-8")()  # a character cut between two pieces is kept whole
    with open(path, "rb") as f:
        try:
            for raw in iter(lambda: f.read(piece), b""):  # in native byte order after a BOM, never empty
                yield torch.frombuffer(bytearray(utf8.decode(raw).encode("utf-32")), dtype=torch.int32)[1:]
            utf8.decode(b"", final=True)  # the file may end inside a character
        except UnicodeDecodeError as e:
            at = f.tell() - len(e.object) + e.start
            raise UsageError(f"{path} is not UTF-8 text (byte {at:,} is {e.object[e.start]:#04x}); "
                             "convert it, e.g. iconv -t UTF-8") from None

@torch.no_grad()
def split_loss(model, data, rows=16):
    """The loss over a split's first eval_chars characters: every full window, each character once."""
    model.eval()
    n = max((min(len(data), hp.eval_chars + 1) - 1) // hp.block_size, 1)  # whole windows, one at least
    x, y = (data[i:i + n * hp.block_size].view(n, hp.block_size).long() for i in (0, 1))  # (n, T) each
    losses = [model(xb, yb)[1].float() * len(xb) for xb, yb in zip(x.split(rows), y.split(rows))]
    model.train()
    return sum(losses).item() / n

def show_vocab(chars, limit=100):
    s = "".join(chars)
    return repr(s) if len(s) <= limit else repr(s[:limit]) + f"... ({len(s) - limit} more)"

def describe(device, overrides, model):
    why = "the lecture's model" if device.startswith("cuda") else "the small default of a CPU or mps"
    log(f"device {device}: {why}, bf16 {isinstance(autocast(torch.device(device)), torch.autocast)}; "
        f"overridden: {', '.join(sorted(overrides)) or 'nothing'}")
    log(f"model: {hp.n_layer} layers, {hp.n_head} heads, {hp.n_embd} wide, block {hp.block_size}, "
        f"dropout {hp.dropout}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    split = f", split over {WORLD_SIZE} processes ({hp.batch_size // WORLD_SIZE} each)" * (WORLD_SIZE > 1)
    budget = f" or {hp.max_time:g} s, whichever ends first" * (hp.max_time > 0)
    optimiser = "Muon for the blocks' matrices, AdamW for the rest" if hp.muon else "AdamW"
    log(f"batch: {hp.batch_size} x {hp.block_size} = {hp.batch_size * hp.block_size:,} tokens per step"
        f"{split}; {hp.max_iters:,} steps{budget}; {optimiser}")

def final_loss(model, ckpt, step, started):
    """The best checkpoint's loss on the validation split (the last step's weights if this run saved none)."""
    where = "(the last step's weights: this run's checkpoint is not there)"
    if ckpt.mine and identity(ckpt.path) == ckpt.mine:  # and no other run has written over it since
        step, where = load_checkpoint(ckpt.path, model)[0]["step"], f"({hp.ckpt_path})"
    val_loss = split_loss(model, val_data)
    note = f", its first {hp.eval_chars:,} characters" if len(val_data) > hp.eval_chars + 1 else ""
    print(f"best checkpoint: step {step} {where}; on the validation split{note}:")
    print(f"final val loss {val_loss:.4f}")
    print(f"total time {clock(time.time() - started)}; a sample from the best checkpoint:")
    return val_loss

def write(model, prompt, encode, decode):
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
    prompt = hp.prompt or ("\n" if "\n" in chars else chars[0])
    unknown = sorted(set(prompt) - set(chars))
    if unknown:
        raise UsageError(f"the prompt has characters the model never saw: {''.join(unknown)!r}; "
                         f"it knows {show_vocab(chars)}")
    return prompt

def sample_checkpoint(device):
    checkpoint, model = load_checkpoint(hp.ckpt_path)
    chars, model = checkpoint["chars"], model.to(device)
    encode, decode = tokenizer(chars)
    if MASTER:  # under torchrun the text is written once
        write(model, sample_prompt(chars), encode, decode)
    return SimpleNamespace(model=model, encode=encode, decode=decode, chars=chars)

def load_checkpoint(path, model=None, optimizers=(), chars=None):
    """path's checkpoint, loaded into model (None: a new one) and optimizers; weights_only: no code runs."""
    if not os.path.isfile(path):
        raise UsageError(f"no checkpoint at {path}; train one with `python gpt.py` (or set --ckpt_path)")
    keys = ("model", "optimizer", "config", "chars", "step", "best_val_loss", "elapsed")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        missing = [key for key in keys if key not in checkpoint]
    except Exception as e:
        raise UsageError(f"{path} is not a checkpoint that gpt.py wrote, or it was cut short "
                         f"({type(e).__name__}); --ckpt_path names the checkpoint") from None
    if missing:
        raise UsageError(f"checkpoint {path} lacks {', '.join(missing)}; train one with `python gpt.py`")
    if chars and checkpoint["chars"] != chars:  # before the weights: another vocabulary size would not fit
        new, gone = set(chars) - set(checkpoint["chars"]), set(checkpoint["chars"]) - set(chars)
        raise UsageError(f"the text's vocabulary is not the checkpoint's (new: {show_vocab(sorted(new))}, "
                         f"missing: {show_vocab(sorted(gone))}); resume on the text it was trained on")
    if optimizers and len(checkpoint["optimizer"]) != len(optimizers):  # AdamW's state, and Muon's if --muon
        raise UsageError(f"checkpoint {path} was trained with --muon={not hp.muon}; resume so")
    try:
        model = GPT(GPTConfig(**checkpoint["config"])) if model is None else model
        model.load_state_dict(checkpoint["model"])
        for optimizer, state in zip(optimizers, checkpoint["optimizer"]):
            optimizer.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        detail = str(e).strip().splitlines()[-1].strip()[:160]  # the last line names the tensor
        raise UsageError(f"checkpoint {path} does not fit the model it describes ({detail}); it was written "
                         "by another version of gpt.py: train again") from None
    return checkpoint, model

def identity(path):
    st = os.stat(path) if os.path.exists(path) else None
    return st and (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

class Checkpoint:
    """The best model so far, by val loss; a file this run did not write is kept, as gpt.1.pt, ..."""

    def __init__(self, path, model, optimizers, chars):
        self.path, self.model, self.optimizers, self.chars = path, model, optimizers, chars
        self.tmp, self.best_val, self.mine, self.start = f"{path}.{os.getpid()}.tmp", math.inf, None, (0, 0.0)
        if not path or os.path.isdir(path):
            raise UsageError(f"--ckpt_path={path!r} must name a file, not a folder")
        try:  # a folder that cannot be made or written to stops the run now, not after the first evaluation
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            open(self.tmp, "wb").close()
            os.remove(self.tmp)
        except OSError as e:
            raise UsageError(f"--ckpt_path={path} cannot be written ({e.strerror})") from None
        if hp.resume:  # the weights, the optimiser, the step and the clock go on, and so does the file
            resumed, _ = load_checkpoint(path, model, optimizers, chars)
            self.best_val, self.mine = resumed["best_val_loss"], identity(path)
            self.start = (resumed["step"], resumed["elapsed"])

    def save_if_best(self, step, val, elapsed):
        """Through this process's own temporary file, renamed over the old one: a crash leaves that whole."""
        if not val < self.best_val:  # a worse (or NaN) estimate never overwrites a better checkpoint
            return False
        self.best_val, n, (stem, ext) = val, 1, os.path.splitext(self.path)
        if identity(self.path) not in (None, self.mine):
            while os.path.exists(f"{stem}.{n}{ext}"):
                n += 1
            os.rename(self.path, f"{stem}.{n}{ext}")
            print(f"{self.path} holds a checkpoint this run did not write: it is kept as {stem}.{n}{ext}")
        try:
            with open(self.tmp, "wb") as f:
                torch.save({"model": self.model.state_dict(), "config": asdict(self.model.config),
                            "optimizer": [o.state_dict() for o in self.optimizers], "hparams": asdict(hp),
                            "chars": self.chars, "step": step, "best_val_loss": val, "elapsed": elapsed}, f)
            os.replace(self.tmp, self.path)
        finally:
            if os.path.exists(self.tmp):
                os.remove(self.tmp)
        self.mine = identity(self.path)
        return True

@contextmanager
def distributed(device):
    """Under torchrun: join the other processes (nccl on GPUs, gloo on CPUs) and leave together at the end."""
    if WORLD_SIZE > 1:
        torch.distributed.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    try:
        yield
    except BaseException as e:  # an error's traceback holds the loop's DDP wrapper; freed only at exit, after
        if WORLD_SIZE > 1:  # the group is gone, it can hang gloo's threads: free it now
            traceback.clear_frames(e.__traceback__)  # (a single process keeps its frames for a debugger)
        raise
    finally:
        if WORLD_SIZE > 1:
            torch.distributed.destroy_process_group()

def for_training(model):
    """The module the loop calls: compiled where torch.compile works, and in DDP under torchrun."""
    t0, device, fast = time.time(), model.lm_head.weight.device, model
    if hp.compile:
        try:  # a warm-up on get_batch's own layout (another would compile again), the RNG put back after it
            candidate = torch.compile(model)
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), autocast(device):
                _, loss = candidate(*get_batch("train", hp.batch_size // WORLD_SIZE))
            loss.backward()  # compiles the backward graph too; the loop's zero_grad drops these gradients
            fast = candidate
            log(f"compiled in {time.time() - t0:.1f} s")
        except Exception as e:
            log(f"torch.compile failed ({type(e).__name__}: {str(e).strip().splitlines()[0][:100]}); "
                "training eager (--compile=false skips this)")
    if WORLD_SIZE > 1:  # broadcast_buffers=False: the only buffers, the rotary tables, never change
        return torch.nn.parallel.DistributedDataParallel(fast, broadcast_buffers=False)
    return fast

def clock(seconds):
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"

class Progress:
    """The run's clock (compiling counts), its progress lines, and its end: budget, Ctrl-C or SIGTERM."""

    def __init__(self, step, elapsed, ckpt):
        self.t0, self.ckpt, self.signal, self.handlers = time.time() - elapsed, ckpt, 0, {}
        self.since, self.dt = None, None  # the time and step the speed is measured from; seconds per step

    def __enter__(self):  # the handlers are the loop's alone; Python allows them only in the main thread
        if threading.current_thread() is threading.main_thread():
            self.handlers = {s: signal.signal(s, self.interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *error):  # a notebook gets its usual Ctrl-C back
        for s, handler in self.handlers.items():
            signal.signal(s, handler)

    def interrupt(self, signum, frame):
        if self.signal and WORLD_SIZE == 1:  # a second one stops at once (torchrun kills 30 s after one)
            raise KeyboardInterrupt
        self.signal = signum  # a number, so that every process can agree on it

    def is_last(self, step):
        self.since = self.since or (time.time(), step)  # the speed counts from the first step, compiled
        agreed = torch.tensor([time.time() - self.t0, float(self.signal)])
        if WORLD_SIZE > 1:  # every process takes the same schedule and stops at the same step
            agreed = agreed.to(self.ckpt.model.lm_head.weight.device)
            torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
        self.elapsed, stopping = agreed.tolist()
        self.fraction = max(step / max(hp.max_iters, 1), self.elapsed / hp.max_time if hp.max_time else 0.0)
        if stopping:
            log(f"\ninterrupted by {signal.Signals(int(stopping)).name}: finishing with the best checkpoint")
        return step >= hp.max_iters or 0 < hp.max_time <= self.elapsed or stopping > 0

    def log(self, step, loss, lr):
        loss = loss.detach().float()
        if WORLD_SIZE > 1:  # the mean over all processes
            torch.distributed.all_reduce(loss)
            loss /= WORLD_SIZE
        if not math.isfinite(loss.item()):
            raise UsageError(f"the loss became {loss.item()} at step {step}; {hp.ckpt_path} keeps val "
                             f"{self.ckpt.best_val:.4f}; try a lower --learning_rate than {hp.learning_rate}")
        self.dt = (time.time() - self.since[0]) / (step - self.since[1])
        self.line(step, f"loss {loss.item():.4f} | lr {lr:.2e}")

    def line(self, step, what):
        elapsed, speed = time.time() - self.t0, "speed not measured yet"
        left = hp.max_time - elapsed if hp.max_time else math.inf
        if self.dt:
            speed = f"{self.dt * 1e3:.0f} ms/step, {hp.batch_size * hp.block_size / self.dt / 1e3:.1f}k tok/s"
            left = min(left, (hp.max_iters - step) * self.dt)
        time_left = f"~{clock(max(left, 0))} left" if left < math.inf else "time left unknown"
        log(f"step {step}: {what} | {speed} | {clock(elapsed)} elapsed, {time_left}")
        self.since = (time.time(), step)  # the next speed counts from here: evaluations left out

if __name__ == "__main__":
    result = main()  # under %run, result stays in the notebook
