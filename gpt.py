"""
gpt.py: a character-level GPT, written from scratch in one file, trained on tiny-shakespeare. It follows
Andrej Karpathy's lecture "Let's build GPT: from scratch, in code, spelled out" and nanoGPT: each character is
a token, and a stack of blocks (masked multi-head self-attention, then a feed-forward layer, with residual
connections and LayerNorm) learns to predict the next one; bigram.py is the baseline. It trains as nanoGPT
does (AdamW, weight decay, gradient clipping, N(0, 0.02) weights, no biases in the linear layers); measured
choices (README): bigram embeddings, rotary positions, QK-norm, ReLU², zero-initialised output projections,
the schedule, and on a CPU, Muon for the blocks' matrices.

    python gpt.py                                 train (a CPU or a GPU default, by device), then write
    python gpt.py --max_iters=500 --device=cpu    override any hyperparameter; --help lists them all
    python gpt.py --input=my_text.txt             train on any UTF-8 text
    python gpt.py --sample --prompt="ROMEO:"      write from the saved checkpoint, no training
    python gpt.py --resume                        continue training from the checkpoint
    torchrun --standalone --nproc_per_node=2 gpt.py   data-parallel training on 2 processes (or GPUs)
In a notebook, paste it into a cell whose last line is result = main(["gpt.py", "--max_iters=500"]); the
next cell can use result.model, result.encode and result.decode. Below "# ---- plumbing" is what serves it.
"""
import hashlib
import inspect
import math
import os
import re
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
def by_device(cpu, cuda):  # a helper for the table below: one default per kind of device
    """A default for each kind of device: a CUDA GPU trains a model of the lecture's size, a CPU (or mps) a
    small one in a time budget (the lecture's would need ~17 hours on 2 CPU cores); in 280 s there, 3 layers
    x 96 wide beat 4 x 96 and 4 x 128, and (with Muon) 8 windows of 256 a step beat 32 of 64 (README)."""
    return field(default=cpu, metadata={"cuda": cuda})

@dataclass
class Hyperparameters:
    # the model and its training, for each kind of device: edit the value for yours
    batch_size: int = by_device(cpu=8, cuda=64)             # sequences per optimiser step, all processes
    block_size: int = 256                                   # context length: the characters the model sees
    n_layer: int = by_device(cpu=3, cuda=6)                 # transformer blocks
    n_head: int = by_device(cpu=3, cuda=6)                  # attention heads, each n_embd // n_head wide
    n_embd: int = by_device(cpu=96, cuda=384)               # width of the residual stream
    dropout: float = by_device(cpu=0.0, cuda=0.2)           # on the embedding, attention, residual branches
    learning_rate: float = by_device(cpu=1.5e-3, cuda=1e-3) # peak learning rate, reached after the warmup
    min_lr: float = by_device(cpu=1.5e-4, cuda=1e-4)        # the learning rate at the end of the budget
    max_iters: int = by_device(cpu=100_000, cuda=1200)      # optimiser steps at most
    max_time: float = by_device(cpu=280.0, cuda=0.0)        # training seconds, compiling included (0: none)
    eval_interval: int = by_device(cpu=500, cuda=250)       # steps between train/val estimates (and the last)
    eval_iters: int = by_device(cpu=10, cuda=50)            # batches per estimate, which picks the checkpoint
    log_interval: int = by_device(cpu=100, cuda=50)         # steps between progress lines
    muon: bool = by_device(cpu=True, cuda=False)            # Muon for the blocks' matrices (else all AdamW)
    # the same on every device
    warmup_iters: int = 100     # steps of linear warmup up to learning_rate
    cooldown_frac: float = 0.5  # the last part of the budget, in which the learning rate decays to min_lr
    weight_decay: float = 0.3   # decay of the weight matrices and embeddings (0.1 let the bigrams overfit)
    grad_clip: float = 1.0      # clip the gradient norm to this (0: off)
    device: str = "auto"        # auto picks cuda, then mps, then cpu
    compile: bool = True        # torch.compile the model; it falls back to eager if compiling fails
    seed: int = 1337            # one seed makes a run, and a sample, repeatable
    input: str = "input.txt"    # the text to train on; the default is looked for beside this script
    eval_chars: int = 1_000_000 # the final validation loss reads at most this many characters
    ckpt_path: str = "gpt.pt"   # the best model so far, by val loss; the default lives beside this script
    resume: bool = False        # continue training from ckpt_path
    sample: bool = False        # only write text from ckpt_path, no training
    prompt: str = ""            # the text a sample continues (empty: a newline, if the text has one)
    max_new_tokens: int = 500   # characters to write
    temperature: float = 1.0    # < 1 is more conservative, > 1 more adventurous, 0 takes the likeliest
    top_k: int = 0              # sample among the k likeliest characters only (0: all)

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

def load_data(text, encode, device):
    """The whole text as one tensor of character ids, as in the lecture: the first 90% to train on, the last
    10% to validate on."""
    global train_data, val_data
    data = torch.tensor(encode(text), dtype=torch.long)
    n = int(0.9 * len(data))
    if min(n, len(data) - n) <= hp.block_size + 1:
        raise UsageError(f"the text is too short for --block_size={hp.block_size}: {len(data):,} characters "
                         f"give splits of {n:,} and {len(data) - n:,}; each needs over {hp.block_size + 1}")
    train_data, val_data = data[:n].to(device), data[n:].to(device)

def get_batch(split, batch_size, generator=None):
    """Random windows of block_size + 1 characters from one split: x is the first block_size of each, y the
    last block_size, so y[b, t] is the character that follows x[b, :t+1]. One gather, no loop over rows."""
    data = train_data if split == "train" else val_data
    B, T = batch_size, hp.block_size
    # randint's bound is exclusive: the last start is len - T - 1, whose window ends with the split's end
    ix = torch.randint(len(data) - T, (B,), device=data.device, generator=generator)  # (B,)
    windows = data[ix[:, None] + torch.arange(T + 1, device=data.device)]  # (B, T+1)
    return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)

@torch.no_grad()
def estimate_loss(model):
    """Mean loss over eval_iters batches of each split, in eval mode (no dropout). The batches come from a
    generator seeded the same way every time, so two estimates differ only because the model changed."""
    out = {}
    was_training = model.training
    model.eval()
    for split in ("train", "val"):
        generator = torch.Generator(device=train_data.device).manual_seed(hp.seed)
        losses = torch.zeros(hp.eval_iters, device=train_data.device)
        for k in range(hp.eval_iters):
            X, Y = get_batch(split, hp.batch_size, generator)
            _, loss = model(X, Y)
            losses[k] = loss
        out[split] = losses.mean().item()
    model.train(was_training)
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
    """Rotary position embedding: turn each pair of channels of q or k (channel i with channel i + hs/2) by
    an angle that grows with the position, so q·k sees positions only as how far apart two tokens are.
    x: (B, nh, T, hs); cos, sin: (T, hs/2)."""
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
        # attention_reference in one kernel (flash attention in bf16 on recent GPUs); dropout_p: wei's dropout
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
        # a vector per pair (previous character, this one), and per character opening a window (README)
        self.bigram_embedding_table = nn.Embedding((config.vocab_size + 1) * config.vocab_size, config.n_embd)
        # positions enter as rotations of q and k (apply_rotary), not as a learned table added to the tokens
        cos, sin = rotary_tables(config.block_size, config.n_embd // config.n_head)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config.n_embd, config.n_head, config.dropout)
                                    for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # N(0, 0.02) makes the first logits near zero, so the loss starts near ln(vocab_size): every character
        # equally likely. The projections back into the residual stream start at zero, so each block starts
        # as the identity and depth cannot grow the stream (modded-nanogpt; val -0.015 at 400 steps, README);
        # the bigrams' vectors start at zero too: training starts from the characters-only model (val -0.009)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight") or name.startswith("bigram"):
                nn.init.zeros_(p)
            elif p.dim() == 2:
                nn.init.normal_(p, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        prev = F.pad(idx[:, :-1], (1, 0), value=self.config.vocab_size)  # (B, T); vocab_size: window start
        x = self.token_embedding_table(idx) + self.bigram_embedding_table(prev * self.config.vocab_size + idx)
        x = self.drop(x)  # (B, T, C)
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
        """idx (B, T) followed by max_new_tokens sampled tokens, (B, T + max_new_tokens). It samples in eval
        mode (no dropout) and then restores the mode it found."""
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
def make_optimizers(model):
    """AdamW with nanoGPT's betas, decaying matrices only (not LayerNorm's vectors), fused (a step: 0.6 ms
    on 2 CPU cores, 3.7 unfused). With --muon the blocks' matrices take Muon: momentum, orthogonalised so
    that each direction of a matrix moves roughly alike (val -0.02 at 280 s on a CPU, README). Embeddings
    and head stay with AdamW, as Muon's authors advise; match_rms_adamw sizes Muon's steps like AdamW's."""
    hidden = [p for n, p in model.named_parameters() if hp.muon and n.startswith("blocks.") and p.dim() == 2]
    decay = [p for p in model.parameters() if p.dim() >= 2 and all(p is not h for h in hidden)]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizers = [torch.optim.AdamW(groups, lr=hp.learning_rate, betas=(0.9, 0.95), fused=True)]
    if hidden:
        muon_in_fp32_on_cpu()  # torch's Muon computes in bf16, which many CPUs only emulate (plumbing)
        optimizers.append(torch.optim.Muon(hidden, lr=hp.learning_rate, weight_decay=hp.weight_decay,
                                           adjust_lr_fn="match_rms_adamw"))
    return optimizers

def get_lr(step, fraction):
    """Warmup-stable-decay: a linear warmup, learning_rate held, then a linear decay to min_lr over the last
    cooldown_frac of the budget (val -0.027 against a cosine at 400 steps, README). fraction: the part of the
    budget spent, by steps or by time, whichever is further along, so under max_time too it ends at min_lr."""
    if step < hp.warmup_iters:
        return hp.learning_rate * (step + 1) / hp.warmup_iters
    cooldown = min(max((fraction - 1 + hp.cooldown_frac) / hp.cooldown_frac, 0.0), 1.0)  # 0 until it starts
    return hp.learning_rate + cooldown * (hp.min_lr - hp.learning_rate)

# ----------------------------------------------------------------------------- train
def train(model, optimizers, ckpt, step, elapsed):
    """The lecture's loop: each step draws a batch, computes the loss, backpropagates and updates. Every
    eval_interval steps, and at the last one, rank 0 estimates both losses and keeps the best model.
    It stops after max_iters steps or max_time seconds, or at a step boundary after Ctrl-C or SIGTERM."""
    progress = Progress(step, elapsed, ckpt)  # the clock (compiling counts), log lines, stop (plumbing)
    train_model = for_training(model)  # torch.compile, and DDP under torchrun (plumbing)
    with stop_signals() as stop:  # Ctrl-C or SIGTERM: finish at the next step boundary (plumbing)
        while True:
            last = progress.is_last(step, stop.requested)  # every rank agrees, so none waits forever
            if MASTER and (step % hp.eval_interval == 0 or last):  # MASTER: process 0 (plumbing)
                t_eval = time.time()
                losses = estimate_loss(model)
                saved = ckpt.save_if_best(step, losses["val"], progress.elapsed)
                progress.evaluated(step, losses, saved, time.time() - t_eval)
            if last:
                return step

            lr = get_lr(step, progress.fraction(step))
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = lr
            xb, yb = get_batch("train", hp.batch_size // WORLD_SIZE)  # each process draws its share
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

# ----------------------------------------------------------------------------- sample
def write(model, prompt, chars):
    """Stream max_new_tokens characters after the prompt to stdout, each as soon as it is sampled."""
    encode, decode = tokenizer(chars)
    torch.manual_seed(hp.seed)  # the same seed writes the same text
    idx = torch.tensor([encode(prompt)], dtype=torch.long, device=model.lm_head.weight.device)  # (1, T)
    print(prompt, end="", flush=True)
    for _ in range(hp.max_new_tokens):
        idx = model.generate(idx, 1, hp.temperature, hp.top_k)  # (1, T+1)
        print(decode([idx[0, -1].item()]), end="", flush=True)
    print()

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

        text = read_text(hp.input, download_if_missing="input" not in overrides)
        chars = sorted(set(text))  # the vocabulary: every distinct character, in code point order
        log(f"text: {hp.input}, {len(text):,} characters, vocabulary of {len(chars)}: {show_vocab(chars)}")
        encode, decode = tokenizer(chars)
        prompt = sample_prompt(chars)  # what the sample at the end continues, checked now (plumbing)
        checkpoint = resume_checkpoint(chars, overrides) if hp.resume else None  # it sets the model's shape
        load_data(text, encode, device)
        del text

        config = GPTConfig(len(chars), hp.block_size, hp.n_layer, hp.n_head, hp.n_embd, hp.dropout)
        model = GPT(config).to(device)
        optimizers = make_optimizers(model)
        ckpt = Checkpoint(hp.ckpt_path, model, optimizers, chars, checkpoint)  # a resumed run's state too
        describe(device, overrides, model)
        with distributed(device):  # torchrun: join the other processes, and leave together (plumbing)
            step = train(model, optimizers, ckpt, *ckpt.start)  # from 0, or from a resumed checkpoint's step
            check_replicas(model)
        result = SimpleNamespace(model=model, encode=encode, decode=decode, chars=chars, step=step)
        if MASTER:  # the best model: its loss on the whole validation split, then a sample
            best = ckpt.best() or {"model": model.state_dict(), "step": step}  # None if no evaluation saved
            where = hp.ckpt_path if "chars" in best else "the last step's weights: no checkpoint was saved"
            model.load_state_dict(best["model"])
            result.val_loss = split_loss(model, val_data)
            note = f", its first {hp.eval_chars:,} characters" if len(val_data) > hp.eval_chars + 1 else ""
            print(f"best checkpoint: step {best['step']} ({where}); on the validation split{note}:")
            print(f"final val loss {result.val_loss:.4f}")
            print(f"total time {clock(time.time() - started)}; a sample from the best checkpoint:")
            write(model, prompt, chars)
        return result

# ---- plumbing: settings, files, processes, signals and log lines; skip it on a first read
# torchrun starts one process per GPU (or per share of a CPU) and tells each its place; a plain run is 1 of 1
RANK, LOCAL_RANK = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
WORLD_SIZE = int(os.environ.get("WORLD_SIZE", 1))
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
        if e.code or "ipykernel" not in sys.modules:  # in a notebook, --help only prints
            raise

def log(message):
    if MASTER:
        print(message)

def configure(argv):
    """The device's defaults, the paths beside this file, then the overrides, checked. A notebook kernel's own
    arguments (-f kernel.json) are never meant for this script."""
    argv = (sys.argv[:1] if "ipykernel" in sys.modules else sys.argv) if argv is None else argv
    if argv and argv[0].startswith("-"):  # main(["--max_iters=5"]), with no program name
        argv = ["gpt.py", *argv]
    if "-h" in argv or "--help" in argv:
        print_help(argv[0])
        sys.exit(0)
    overrides = dict(parse_arg(arg) for arg in argv[1:])
    device = pick_device(overrides.get("device", "auto"))
    cuda = {f.name: f.metadata["cuda"] for f in fields(Hyperparameters) if "cuda" in f.metadata}
    here = os.path.dirname(os.path.abspath(globals().get("__file__", "gpt.py")))  # a notebook has no __file__
    paths = {key: os.path.join(here, getattr(Hyperparameters, key)) for key in ("input", "ckpt_path")}
    settings = Hyperparameters(**{**(cuda if device.startswith("cuda") else {}), **paths, **overrides})
    check(settings)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # TF32 matmuls on a GPU
    return settings, device, overrides

def parse_arg(arg):
    """--name=value (a bare --flag is a true bool) → (name, value of the default's type)."""
    kinds = {f.name: f.type for f in fields(Hyperparameters)}
    name, has_value, text = arg[2:].partition("=")
    if not arg.startswith("--") or name not in kinds:
        raise UsageError(f"unknown argument {arg!r}: settings take the form --name=value, with a name among "
                         f"{', '.join(kinds)} (--help says what each means)")
    kind = kinds[name]
    try:
        if kind is bool:
            value = text.lower() if has_value else "true"
            return name, {"true": True, "1": True, "false": False, "0": False}[value]
        if kind is int and not text.lstrip("+-").replace("_", "").isdigit() and float(text).is_integer():
            text = str(int(float(text)))  # 1e4 is 10000; 2.5 stays an error
        return name, kind(text)
    except (KeyError, ValueError):
        example = getattr(Hyperparameters(), name)
        message = f"--{name} takes {kind.__name__} values (like --{name}={example}), not {text!r}"
        raise UsageError(message) from None

def print_help(program):
    """Every setting with its default and its meaning, read from the comments of Hyperparameters."""
    source = "".join(inspect.findsource(print_help)[0])  # this file, or the notebook cell it was pasted into
    meanings = dict(re.findall(r"^    (\w+): \w+ = .*?\s+# (.*)$", source, re.M))
    print(f"usage: python {os.path.basename(program)} [--name=value ...]\n\nsettings, with their defaults:")
    for f in fields(Hyperparameters):
        cuda = f" (cuda: {f.metadata['cuda']!r})" if "cuda" in f.metadata else ""
        print(f"  --{f.name}={f.default!r}{cuda}\n        {meanings.get(f.name, '')}")

POSITIVE = ("batch_size", "block_size", "n_embd", "n_head", "n_layer", "eval_interval", "eval_iters",
            "log_interval")  # the other numbers may be 0

def check(s):
    """Settings that would fail later, or silently do the wrong thing, are refused here."""
    for f in fields(s):
        value, least = getattr(s, f.name), 1 if f.name in POSITIVE else 0
        if f.type in (int, float) and not (math.isfinite(value) and value >= least):
            raise UsageError(f"--{f.name} must be a finite number >= {least}, not {value}")
    if s.dropout >= 1:
        raise UsageError(f"--dropout must be below 1, not {s.dropout}")
    if not 0 < s.cooldown_frac <= 1:
        raise UsageError(f"--cooldown_frac must be in (0, 1], not {s.cooldown_frac}")
    if s.eval_chars <= s.block_size:
        raise UsageError(f"--eval_chars={s.eval_chars} must exceed --block_size={s.block_size}")
    if s.n_embd % s.n_head or (s.n_embd // s.n_head) % 2:
        raise UsageError(f"--n_embd={s.n_embd} must split into --n_head={s.n_head} heads of an even width "
                         f"(rotary embeddings turn pairs of numbers); e.g. --n_embd={s.n_head * 32}")
    if s.batch_size % WORLD_SIZE:
        raise UsageError(f"--batch_size={s.batch_size} must divide evenly over {WORLD_SIZE} processes")

def pick_device(name):
    """cuda, then mps, then cpu; one named must exist. Under torchrun each process takes its own GPU."""
    found = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    usable = [d for d in found if found[d]]
    usable += [f"cuda:{i}" for i in range(torch.cuda.device_count() if found["cuda"] else 0)]
    name = usable[0] if name == "auto" else name
    if name not in usable:
        raise UsageError(f"--device={name} is not available here; usable: auto, {', '.join(usable)}")
    if WORLD_SIZE > 1 and name.startswith("cuda"):
        if name != "cuda":
            raise UsageError(f"--device={name}: under torchrun each process takes the GPU of its LOCAL_RANK; "
                             "use --device=cuda, with CUDA_VISIBLE_DEVICES to choose the GPUs")
        name = f"cuda:{LOCAL_RANK}"
        torch.cuda.set_device(name)
    return name

def autocast(device):
    """bf16 on a GPU that has it natively; a T4 or V100 only emulates it, slowly, so it trains in fp32."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()

def muon_in_fp32_on_cpu():
    """torch.optim.Muon orthogonalises each update by a Newton-Schulz iteration in bf16, which a CPU without
    native bf16 emulates: a step took 216 ms with it here, ~80 in fp32, ~62 with AdamW only (README). torch
    2.13 has no setting for it: for CPU tensors, for the rest of the process, it is swapped for fp32."""
    muon = sys.modules.get("torch.optim._muon")  # torch 2.13's place for it; a later torch may move it
    original = getattr(muon, "_zeropower_via_newtonschulz", None)
    if original is None or hasattr(original, "torch_own"):  # then Muon runs as torch has it; or done already
        return
    def orthogonalise(grad, ns_coefficients, ns_steps, eps):
        if grad.device.type != "cpu":  # any other device keeps torch's own
            return original(grad, ns_coefficients, ns_steps, eps)
        a, b, c = ns_coefficients
        X = grad.float().T if grad.size(0) > grad.size(1) else grad.float()  # (m, n), m <= n
        X = X / X.norm().clamp(min=eps)  # every singular value at most 1
        for _ in range(ns_steps):  # each lifts the small singular values towards 1 (to ~0.7-1.2)
            A = X @ X.T  # (m, m)
            X = torch.addmm(X, torch.addmm(A, A, A, beta=b, alpha=c), X, beta=a)  # aX + (bA + cA²)X
        return X.T if grad.size(0) > grad.size(1) else X
    orthogonalise.torch_own = original
    muon._zeropower_via_newtonschulz = orthogonalise

TINY_SHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                        "tinyshakespeare/input.txt")
TINY_SHAKESPEARE = (1_115_394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed")  # bytes

def read_text(path, download_if_missing):
    """The training text. A missing default input.txt is downloaded, and kept only if it is tiny-shakespeare:
    a truncated transfer, a proxy's page or a changed file is refused, and nothing is left on disk."""
    if download_if_missing and not os.path.exists(path):
        import urllib.request
        print(f"{path} not found; downloading tiny-shakespeare from {TINY_SHAKESPEARE_URL}")
        try:
            with urllib.request.urlopen(TINY_SHAKESPEARE_URL, timeout=60) as response:
                raw = response.read()
        except Exception as e:
            raise UsageError(f"{path} is missing and downloading {TINY_SHAKESPEARE_URL} failed ({e}); "
                             "download it there by hand, or train on any text with --input=PATH") from None
        if (len(raw), hashlib.sha256(raw).hexdigest()) != TINY_SHAKESPEARE:
            size, sha = TINY_SHAKESPEARE
            raise UsageError(f"{TINY_SHAKESPEARE_URL} did not give tiny-shakespeare ({len(raw):,} bytes, "
                             f"not {size:,} with sha256 {sha[:12]}…); nothing was kept")
        with open(f"{path}.{os.getpid()}.part", "wb") as f:  # renamed only once whole
            f.write(raw)
        os.replace(f.name, path)
    if not os.path.isfile(path):
        what = "is a folder; it must be a text file" if os.path.isdir(path) else "not found"
        raise UsageError(f"input file {path} {what} (--input=PATH names the text to train on)")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path} is not UTF-8 text (byte {e.start} of {len(raw):,} is {raw[e.start]:#04x}); "
                         "convert it, e.g. iconv -t UTF-8") from None
    if not text:
        raise UsageError(f"{path} is empty (0 characters)")
    return text

@torch.no_grad()
def split_loss(model, data, rows=64):
    """The loss over a whole split, deterministic: every full window of block_size characters, side by side,
    each character predicted once. It reads at most eval_chars characters, so a huge text ends in seconds."""
    was_training = model.training
    model.eval()
    data = data[:hp.eval_chars + 1]
    n = (len(data) - 1) // hp.block_size
    x = data[:n * hp.block_size].view(n, hp.block_size)  # (n, T)
    y = data[1:n * hp.block_size + 1].view(n, hp.block_size)  # (n, T)
    total = torch.zeros((), device=data.device)
    for i in range(0, n, rows):
        _, loss = model(x[i:i + rows], y[i:i + rows])
        total += loss.float() * len(x[i:i + rows])
    model.train(was_training)
    return total.item() / n

def show_vocab(chars, limit=100):
    s = "".join(chars)
    return repr(s) if len(s) <= limit else repr(s[:limit]) + f"... ({len(s) - limit} more)"

def describe(device, overrides, model):
    c, n_params = model.config, sum(p.numel() for p in model.parameters())
    why = "the small default of a CPU or mps (the lecture's model needs ~17 h on 2 CPU cores)"
    if device.startswith("cuda"):
        why = f"the lecture's model; bf16: {isinstance(autocast(torch.device(device)), torch.autocast)}"
    log(f"device {device}; {why}; overridden: {', '.join(sorted(overrides)) or 'nothing'}")
    log(f"model: {c.n_layer} layers, {c.n_head} heads, {c.n_embd} wide, block {c.block_size}, "
        f"dropout {c.dropout}: {n_params / 1e6:.2f}M parameters")
    plan = f"batch: {hp.batch_size} x {hp.block_size} = {hp.batch_size * hp.block_size:,} tokens per step"
    if WORLD_SIZE > 1:
        plan += f", split over {WORLD_SIZE} processes ({hp.batch_size // WORLD_SIZE} each)"
    budget = f" or {hp.max_time:g} s, whichever ends first" if hp.max_time else ""
    optimiser = "Muon for the blocks' matrices, AdamW for the rest" if hp.muon else "AdamW"
    log(f"{plan}; {hp.max_iters:,} steps{budget}; {optimiser}")

KEYS = ("model", "optimizer", "config", "chars", "step", "best_val_loss", "elapsed")  # a checkpoint's fields
SHAPE = ("block_size", "n_layer", "n_head", "n_embd")  # a resumed model keeps the checkpoint's

def load_checkpoint(path):
    """weights_only=True: a checkpoint holds tensors and plain values, and can never run code."""
    if not os.path.isfile(path):
        raise UsageError(f"no checkpoint at {path}; train one with `python gpt.py` (or set --ckpt_path)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        missing = [key for key in KEYS if key not in checkpoint]
        if not missing:  # a config that makes no model is a broken file too
            GPTConfig(**checkpoint["config"])
    except Exception as e:
        raise UsageError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}); "
                         "delete it and train again") from None
    if missing:
        raise UsageError(f"checkpoint {path} lacks {', '.join(missing)}; train one with `python gpt.py`")
    return checkpoint

def load_state(module, state):
    """load_state_dict; a checkpoint that does not fit (other shapes, missing tensors) stops with one line."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        detail = str(e).strip().splitlines()[-1].strip()[:160]  # the last line names the tensor
        raise UsageError(f"checkpoint {hp.ckpt_path} does not fit the model it describes ({detail}); "
                         "delete it and train again") from None
    return module

def sample_prompt(chars):
    """The text a sample continues: --prompt, else a newline (or a text's first character if it has none)."""
    prompt = hp.prompt or ("\n" if "\n" in chars else chars[0])
    unknown = sorted(set(prompt) - set(chars))
    if unknown:
        raise UsageError(f"the prompt has characters the model never saw: {''.join(unknown)!r}; "
                         f"it knows {show_vocab(chars)}")
    return prompt

def sample_checkpoint(device):
    checkpoint = load_checkpoint(hp.ckpt_path)
    chars = checkpoint["chars"]
    model = load_state(GPT(GPTConfig(**checkpoint["config"])).to(device), checkpoint["model"])
    if MASTER:  # under torchrun the text is written once
        write(model, sample_prompt(chars), chars)
    encode, decode = tokenizer(chars)
    return SimpleNamespace(model=model, encode=encode, decode=decode, chars=chars)

def resume_checkpoint(chars, overrides):
    """The checkpoint to continue. Its model's shape becomes the run's (get_batch and the rotary tables
    follow it); a text with another vocabulary is refused."""
    global hp
    checkpoint = load_checkpoint(hp.ckpt_path)
    if checkpoint["chars"] != chars:
        new, gone = set(chars) - set(checkpoint["chars"]), set(checkpoint["chars"]) - set(chars)
        new, gone = "".join(sorted(new)), "".join(sorted(gone))
        raise UsageError(f"the text's vocabulary differs from the checkpoint's (new: {new!r}, "
                         f"missing: {gone!r}); resume on the text it was trained on")
    shape = {key: checkpoint["config"][key] for key in SHAPE}
    ignored = [f"--{key}={overrides[key]}" for key in SHAPE if overrides.get(key, shape[key]) != shape[key]]
    log(f"resuming {hp.ckpt_path}: step {checkpoint['step']}, val loss {checkpoint['best_val_loss']:.4f}")
    if ignored:
        log(f"the model keeps the checkpoint's shape ({shape}), not {' '.join(ignored)}")
    if 0 < hp.max_time <= checkpoint["elapsed"]:
        log(f"it used {checkpoint['elapsed']:.0f} s of --max_time={hp.max_time:g}; raise it to train longer")
    hp = replace(hp, **shape)
    check(hp)
    return checkpoint

def save_checkpoint(path, contents):
    """Write a temporary file of this process, then rename it over the old one: a crash or Ctrl-C mid-save
    leaves the previous checkpoint whole, and two runs never share a temporary file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(contents, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

def identity(path):
    st = os.stat(path) if os.path.exists(path) else None
    return st and (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

class Checkpoint:
    """The best model so far, by val loss, in one file. A file this run did not write (an earlier run's, or
    another running one's) is never overwritten: it is first renamed to the next free name (gpt.1.pt, ...)."""

    def __init__(self, path, model, optimizers, chars, resumed):
        if not path or os.path.isdir(path):
            raise UsageError(f"--ckpt_path={path!r} must name a file, not a folder")
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        except OSError as e:
            raise UsageError(f"--ckpt_path={path} cannot be written ({e.strerror})") from None
        self.path, self.model, self.optimizers, self.chars = path, model, optimizers, chars
        self.best_val, self.mine, self.start = float("inf"), None, (0, 0.0)
        if resumed:  # the weights, the optimiser, the step and the clock go on, and so does the file
            load_state(model, resumed["model"])
            states = resumed["optimizer"]  # AdamW's state, then Muon's with --muon (before it: AdamW's alone)
            states = states if isinstance(states, list) else [states]
            if len(states) != len(optimizers):
                raise UsageError(f"checkpoint {path} was trained with --muon={len(states) > 1}; resume so")
            for optimizer, state in zip(optimizers, states):
                load_state(optimizer, state)
            self.best_val, self.mine = resumed["best_val_loss"], identity(path)
            self.start = (resumed["step"], resumed["elapsed"])

    def save_if_best(self, step, val, elapsed):
        if not val < self.best_val:  # a worse (or NaN) estimate never overwrites a better checkpoint
            return False
        self.best_val, n, (stem, ext) = val, 1, os.path.splitext(self.path)
        if identity(self.path) not in (None, self.mine):
            while os.path.exists(f"{stem}.{n}{ext}"):
                n += 1
            os.rename(self.path, f"{stem}.{n}{ext}")
            print(f"{self.path} holds a checkpoint this run did not write: it is kept as {stem}.{n}{ext}")
        save_checkpoint(self.path, {"model": self.model.state_dict(), "config": asdict(self.model.config),
                                    "optimizer": [o.state_dict() for o in self.optimizers],
                                    "hparams": asdict(hp),
                                    "chars": self.chars, "step": step, "best_val_loss": val,
                                    "elapsed": elapsed})
        self.mine = identity(self.path)
        return True

    def best(self):
        """The best checkpoint, read back from its file as --sample would; None if this run saved none."""
        return load_checkpoint(self.path) if self.mine and identity(self.path) == self.mine else None

@contextmanager
def distributed(device):
    """Under torchrun: join the other processes (nccl on GPUs, gloo on CPUs) and leave together at the end."""
    if WORLD_SIZE > 1:
        torch.distributed.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    try:
        yield
    except BaseException as e:  # an error's traceback holds the loop's DDP wrapper; freed only at exit, after
        if WORLD_SIZE > 1:  # the group is gone, it hung gloo's threads (1 run in 8, busy CPU): free it now
            traceback.clear_frames(e.__traceback__)  # (a single process keeps its frames for a debugger)
        raise
    finally:
        if WORLD_SIZE > 1:
            torch.distributed.destroy_process_group()

def check_replicas(model):
    """A check that data parallelism did its job: every process ends with the same weights."""
    if WORLD_SIZE > 1:
        checksums = [None] * WORLD_SIZE
        checksum = sum(p.double().sum().item() for p in model.parameters())
        torch.distributed.all_gather_object(checksums, checksum)
        verdict = "identical" if len(set(checksums)) == 1 else "DIFFERENT"
        log(f"ddp: parameter checksums of {WORLD_SIZE} ranks: {verdict}")

def for_training(model):
    """The module the loop calls: compiled where torch.compile works (it needs a C++ compiler, and Triton on a
    GPU), and wrapped in DDP under torchrun. The compile's warm-up step draws its batch under a forked RNG, so
    a compiled run draws the same batches as an eager one."""
    t0, device, fast = time.time(), model.lm_head.weight.device, model
    if hp.compile:
        try:
            candidate = torch.compile(model)
            # get_batch's own layout: a contiguous batch made step 1 compile again (17 s on an H100, README)
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), autocast(device):
                _, loss = candidate(*get_batch("train", hp.batch_size // WORLD_SIZE))
            loss.backward()  # compiles the backward graph too, so the first timed steps are real steps
            fast = candidate
            log(f"compiled in {time.time() - t0:.1f} s")
        except Exception as e:
            reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:100]}"
            log(f"torch.compile failed ({reason}); training eager (--compile=false skips this)")
        model.zero_grad(set_to_none=True)
    if WORLD_SIZE == 1:
        return fast
    ids = [device.index] if device.type == "cuda" else None
    # broadcast_buffers=False: the only buffers, the rotary tables, never change
    return torch.nn.parallel.DistributedDataParallel(fast, device_ids=ids, broadcast_buffers=False)

@contextmanager
def stop_signals():
    """Ctrl-C (SIGINT), or SIGTERM, which clusters, containers and `timeout` send before a kill, asks the loop
    to stop at the next step boundary, so the run still keeps its best checkpoint and reports. A second
    signal stops at once. Python allows handlers only in the main thread; elsewhere nothing changes."""
    stop = SimpleNamespace(requested=None)

    def handler(signum, frame):
        if stop.requested and WORLD_SIZE == 1:  # torchrun forwards each signal it gets, and kills after 30 s
            raise KeyboardInterrupt
        stop.requested = signum  # a number, so that every process can agree on it

    main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        yield stop
    finally:  # the handlers are only for the loop; a notebook gets its usual Ctrl-C back
        for s, h in previous.items():
            signal.signal(s, h)

def clock(seconds):
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"

class Progress:
    """The clock of a run (compile time counts, and a resume carries it over), when to stop, and the log
    lines: loss, learning rate, ms per step, tokens per second, time elapsed and left."""

    def __init__(self, step, elapsed, ckpt):
        self.t0, self.elapsed, self.ckpt = time.time() - elapsed, elapsed, ckpt
        self.t_log, self.step_log, self.eval_seconds, self.eval_cost, self.dt = None, step, 0.0, 0.0, None

    def is_last(self, step, stop_requested):
        """max_iters, max_time (keeping time for a last evaluation as long as the one before) or a stop."""
        if self.t_log is None:  # the speed is measured from the first step on, after compiling
            self.t_log = time.time()
        agreed = torch.tensor([time.time() - self.t0, float(stop_requested or 0), self.eval_cost])
        if WORLD_SIZE > 1:  # every process takes the same schedule and stops at the same step
            agreed = agreed.to(self.ckpt.model.lm_head.weight.device)
            torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
        self.elapsed, stopping, eval_cost = agreed.tolist()
        if stopping:
            log(f"\ninterrupted by {signal.Signals(int(stopping)).name}: finishing with the best checkpoint")
        return step >= hp.max_iters or 0 < hp.max_time <= self.elapsed + eval_cost or stopping > 0

    def fraction(self, step):
        """The fraction of the budget spent: by steps or by time, whichever is further along."""
        return max(step / max(hp.max_iters, 1), self.elapsed / hp.max_time if hp.max_time else 0.0)

    def evaluated(self, step, losses, saved, seconds):
        self.eval_seconds, self.eval_cost = self.eval_seconds + seconds, seconds
        note = ", saved" if saved else ""
        losses = f"train loss {losses['train']:.4f}, val loss {losses['val']:.4f}{note}"
        print(f"step {step}: {losses} | {self.status(step)}")

    def log(self, step, loss, lr):
        loss = loss.detach().float()
        if WORLD_SIZE > 1:  # the mean over all processes
            torch.distributed.all_reduce(loss)
            loss /= WORLD_SIZE
        if not math.isfinite(loss.item()):
            raise UsageError(f"the loss became {loss.item()} at step {step}; the best checkpoint "
                             f"({hp.ckpt_path}, val {self.ckpt.best_val:.4f}) is kept; try a lower "
                             f"--learning_rate than {hp.learning_rate:g}")
        now = time.time()
        self.dt = (now - self.t_log - self.eval_seconds) / (step - self.step_log)  # evaluations left out
        self.t_log, self.step_log, self.eval_seconds = now, step, 0.0
        log(f"step {step}: loss {loss.item():.4f} | lr {lr:.2e} | {self.status(step)}")

    def status(self, step):
        elapsed, speed = time.time() - self.t0, "speed not measured yet"
        left = hp.max_time - elapsed if hp.max_time else math.inf
        if self.dt:
            tokens_per_second = hp.batch_size * hp.block_size / self.dt
            speed = f"{self.dt * 1000:.0f} ms/step, {tokens_per_second / 1000:.1f}k tok/s"
            left = min(left, (hp.max_iters - step) * self.dt)
        time_left = f"~{clock(max(left, 0))} left" if left < math.inf else "time left unknown"
        return f"{speed} | {clock(elapsed)} elapsed, {time_left}"

if __name__ == "__main__":
    main()
