"""
gpt.py: a character-level GPT, written from scratch in one file, trained on tiny-shakespeare.

It follows Andrej Karpathy's lecture "Let's build GPT: from scratch, in code, spelled out" and nanoGPT:
characters become tokens, a stack of masked multi-head self-attention and feed-forward blocks (with
residual connections and LayerNorm) learns to predict the next character, and the model then writes.
bigram.py is the baseline this improves on; `diff bigram.py gpt.py` shows the model and little else.

Run it:
    python gpt.py                                 train (a CPU or GPU default, chosen by itself), then write
    python gpt.py --max_iters=500 --device=cpu    override any hyperparameter below as --name=value
    python gpt.py --input=my_text.txt             train on any UTF-8 text
    python gpt.py --sample --prompt="ROMEO:"      write from the saved checkpoint, no training
    python gpt.py --resume                        continue training from the checkpoint
    torchrun --standalone --nproc_per_node=2 gpt.py   data-parallel training on 2 processes (or GPUs)
In a notebook, paste the file into a cell and run it; to override there, end the cell with
main(["gpt.py", "--max_iters=500"]) instead of main(). The kernel's own arguments are ignored.
"""
import math
import os
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn as nn
from torch.nn import functional as F


# ----------------------------------------------------------------------------- hyperparameters
@dataclass
class Hyperparameters:
    # The values here are for a CUDA GPU: the lecture's model. On any other device the script swaps in
    # SMALL_DEFAULTS below, since this model needs ~17 hours on a 2-core CPU.
    batch_size: int = 64        # sequences per optimiser step (all processes together under torchrun)
    block_size: int = 256       # context length: how many characters the model sees at once
    max_iters: int = 5000       # optimiser steps at most
    max_time: float = 0.0       # seconds of training at most, compile included (0: no limit)
    eval_interval: int = 250    # steps between train/val estimates; the last step always evaluates
    eval_iters: int = 50        # batches per estimate: small, since it is only a progress signal
    log_interval: int = 50      # steps between progress lines
    learning_rate: float = 1e-3 # peak AdamW learning rate, reached after warmup, then cosine decay
    min_lr: float = 1e-4        # the learning rate at the end of the budget
    warmup_iters: int = 100     # steps of linear warmup from 0
    weight_decay: float = 0.1   # AdamW decay, applied to matrices only
    grad_clip: float = 1.0      # clip the gradient norm to this (0: off)
    n_embd: int = 384           # width of the residual stream
    n_head: int = 6             # attention heads per layer; each is n_embd // n_head wide
    n_layer: int = 6            # transformer blocks
    dropout: float = 0.2        # on embeddings, attention and residual branches
    device: str = "auto"        # auto picks cuda, then mps, then cpu
    compile: bool = True        # torch.compile the training step; falls back to eager if it fails
    seed: int = 1337            # one seed makes a run, and a sample, repeatable
    input: str = "input.txt"    # the training text; the default is looked for beside this script
    data_url: str = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
    eval_chars: int = 1_000_000 # the final validation loss reads at most this many characters
    ckpt_path: str = "gpt.pt"   # best model so far (by val loss); a relative default lives beside this script
    resume: bool = False        # continue training from ckpt_path
    sample: bool = False        # only write text from ckpt_path
    prompt: str = ""            # text the sample continues (empty: start from a newline)
    max_new_tokens: int = 500   # characters to write
    temperature: float = 1.0    # < 1 is more conservative, > 1 more adventurous, 0 always takes the likeliest
    top_k: int = 0              # sample among the k likeliest characters only (0: all)


# Chosen by a sweep of 9 runs on a 2-core CPU (README, "Results"): a 0.8M-parameter model, dropout off
# because 4.5 minutes see the data only ~9 times (36.6k tok/s), and the cosine spread over a time budget
# that leaves the whole run (start-up, compile, final evaluation and sample) inside 5 minutes.
SMALL_DEFAULTS = dict(batch_size=32, block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
                      learning_rate=2e-3, min_lr=2e-4, max_iters=100_000, max_time=265.0,
                      eval_interval=500, eval_iters=20, log_interval=100)
HERE = os.path.dirname(os.path.abspath(globals().get("__file__", "gpt.py")))  # a notebook has no __file__


class UsageError(Exception):
    """A bad input or setting: reported as one line on stderr with exit status 2, never a traceback."""


def parse_overrides(argv, defaults):
    """`--name=value` arguments → {name: value parsed to the default's type}. `--flag` alone sets a bool.
    Arguments not shaped like that (a notebook kernel's `-f kernel.json`) are left alone, and inside a
    notebook kernel, whose argv is never meant for this script, nothing is parsed."""
    if argv and "ipykernel" in os.path.basename(argv[0]):
        return {}
    types = {f.name: type(getattr(defaults, f.name)) for f in fields(defaults)}
    overrides = {}
    for arg in argv[1:]:
        if not arg.startswith("--"):
            continue
        name, has_value, value = arg[2:].partition("=")
        if name not in types:
            raise UsageError(f"unknown hyperparameter --{name}; valid: {', '.join(types)}")
        kind = types[name]
        if kind is bool:
            value = value.lower() if has_value else "true"
            if value not in ("true", "false", "1", "0", "yes", "no"):
                raise UsageError(f"--{name} takes true or false, not {value!r}")
            overrides[name] = value in ("true", "1", "yes")
            continue
        try:
            if kind is int:
                as_float = float(value)  # so that 1e4 and 5_000 are fine, 2.5 is not
                if not as_float.is_integer():
                    raise ValueError
                overrides[name] = int(as_float)
            else:
                overrides[name] = kind(value)
        except ValueError:
            raise UsageError(f"--{name} takes {kind.__name__} values (like {getattr(defaults, name)!r}), not {value!r}") from None
    return overrides


def check(hp, world_size=1):
    """Settings that would fail later, or silently do the wrong thing, are refused here."""
    for name in ("batch_size", "block_size", "n_embd", "n_head", "n_layer", "eval_interval", "eval_iters",
                 "log_interval", "eval_chars"):
        if getattr(hp, name) <= 0:
            raise UsageError(f"--{name} must be positive, not {getattr(hp, name)}")
    for name in ("max_iters", "max_time", "max_new_tokens", "warmup_iters", "temperature", "top_k",
                 "weight_decay", "grad_clip", "min_lr"):
        if getattr(hp, name) < 0:
            raise UsageError(f"--{name} must be >= 0, not {getattr(hp, name)}")
    if not hp.learning_rate > 0:
        raise UsageError(f"--learning_rate must be positive, not {hp.learning_rate}")
    if not 0 <= hp.dropout < 1:
        raise UsageError(f"--dropout must be in [0, 1), not {hp.dropout}")
    if hp.n_embd % hp.n_head or (hp.n_embd // hp.n_head) % 2:
        raise UsageError(f"--n_embd={hp.n_embd} must split into --n_head={hp.n_head} heads of an even width "
                         f"(rotary embeddings turn pairs of numbers); e.g. n_embd={hp.n_head * 32}")
    if hp.batch_size % world_size:
        raise UsageError(f"--batch_size={hp.batch_size} must divide evenly over {world_size} processes")


def pick_device(name):
    """cuda, then mps, then cpu; a device that was asked for by name must exist."""
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if name == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if available[d])
    if name.split(":")[0] not in available:
        raise UsageError(f"--device={name} is not one of auto, cuda, mps, cpu")
    if not available[name.split(":")[0]]:
        usable = ", ".join(d for d, ok in available.items() if ok)
        raise UsageError(f"--device={name} is not available on this machine; usable here: auto, {usable}")
    return name


# ----------------------------------------------------------------------------- data
def read_text(path, url=None):
    """The training text. When the default input.txt is missing it is downloaded from `url` first."""
    if not os.path.exists(path) and url:
        import urllib.request
        print(f"{path} not found; downloading tiny-shakespeare from {url}")
        tmp = f"{path}.{os.getpid()}.part"  # renamed only once complete, so a failed download leaves nothing
        try:
            urllib.request.urlretrieve(url, tmp)
            os.replace(tmp, path)
        except Exception as e:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise UsageError(f"{path} is missing and downloading {url} failed ({e}); download it there by hand, "
                             "or train on any text with --input=PATH") from None
    if not os.path.exists(path):
        raise UsageError(f"input file {path} not found; --input=PATH names the text to train on")
    if os.path.isdir(path):
        raise UsageError(f"--input={path} is a folder; it must be a text file")
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


def tokenizer(chars):
    """The lecture's character tokenizer: each character of the vocabulary is one integer."""
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}
    encode = lambda s: [stoi[c] for c in s]  # string -> list of integers
    decode = lambda l: "".join(itos[i] for i in l)  # list of integers -> string
    return encode, decode


def encode_tensor(text, chars):
    """The whole text as one tensor: torch.tensor(encode(text)) without a Python int per character
    (28 bytes each), which a 100 MB text could not afford. Code points go through a lookup table, in
    pieces, into the smallest integer type that holds the vocabulary; get_batch converts each batch to long."""
    dtype = torch.uint8 if len(chars) <= 2**8 else torch.int16 if len(chars) <= 2**15 else torch.int32
    lut = torch.zeros(ord(chars[-1]) + 1, dtype=dtype)  # code point -> token id
    lut[torch.tensor([ord(c) for c in chars])] = torch.arange(len(chars)).to(dtype)
    data = torch.empty(len(text), dtype=dtype)
    piece = 1 << 24  # 16M characters at a time bounds the temporary memory at ~130 MB
    for i in range(0, len(text), piece):
        code_points = torch.frombuffer(bytearray(text[i:i + piece].encode("utf-32-le")), dtype=torch.int32)
        data[i:i + len(code_points)] = lut[code_points]
    return data


def show_vocab(chars, limit=100):
    s = "".join(chars)
    return repr(s) if len(s) <= limit else repr(s[:limit]) + f"... ({len(s) - limit} more)"


# The two splits live here (on the device), set by load_data; get_batch reads them like the lecture's globals.
hp = Hyperparameters()
train_data = val_data = None
world_size = 1  # processes under torchrun; each draws batch_size // world_size rows


def load_data(text, chars, device):
    """First 90% of the text to train on, the last 10% to validate on."""
    global train_data, val_data
    data = encode_tensor(text, chars)
    n = int(0.9 * len(data))
    if min(n, len(data) - n) <= hp.block_size + 1:
        raise UsageError(f"the text is too short for --block_size={hp.block_size}: {len(data):,} characters "
                         f"give splits of {n:,} and {len(data) - n:,}; each needs more than {hp.block_size + 1}")
    train_data, val_data = data[:n].to(device), data[n:].to(device)


def get_batch(split, generator=None):
    """Random windows of block_size + 1 characters from one split: x is a window, y the same shifted by one,
    so y[b, t] is the character that follows x[b, :t+1]. One gather, no Python loop over rows."""
    data = train_data if split == "train" else val_data
    B, T = hp.batch_size // world_size, hp.block_size
    # randint's bound is exclusive: the last start is len - T - 1, whose window of T + 1 ends at len
    ix = torch.randint(len(data) - T, (B,), device=data.device, generator=generator)  # (B,)
    windows = data[ix[:, None] + torch.arange(T + 1, device=data.device)].long()  # (B, T+1)
    return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)


@torch.no_grad()
def estimate_loss(model, autocast=nullcontext()):
    """Mean loss over eval_iters batches of each split, in eval mode (no dropout). The batches come from a
    generator seeded the same way every time, so two estimates differ only because the model changed."""
    out = {}
    was_training = model.training
    model.eval()
    for split in ("train", "val"):
        generator = torch.Generator(device=train_data.device).manual_seed(hp.seed)
        losses = torch.zeros(hp.eval_iters, device=train_data.device)
        for k in range(hp.eval_iters):
            X, Y = get_batch(split, generator)
            with autocast:
                _, loss = model(X, Y)
            losses[k] = loss
        out[split] = losses.mean().item()
    model.train(was_training)
    return out


@torch.no_grad()
def split_loss(model, data, block_size, max_chars, batch_size=64, autocast=nullcontext()):
    """The loss over a whole split, deterministic: every full window of block_size characters, side by side,
    each character predicted once. Capped at max_chars so that a huge text still ends in seconds."""
    was_training = model.training
    model.eval()
    data = data[:max_chars + 1]
    n = (len(data) - 1) // block_size
    x = data[:n * block_size].view(n, block_size)  # (n, T)
    y = data[1:n * block_size + 1].view(n, block_size)  # (n, T)
    total = torch.zeros((), device=data.device)
    for i in range(0, n, batch_size):
        with autocast:
            _, loss = model(x[i:i + batch_size].long(), y[i:i + batch_size].long())
        total += loss.float() * len(x[i:i + batch_size])
    model.train(was_training)
    return total.item() / n


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
    q, k, v: (B, nh, T, hs). A test checks that the two agree."""
    T, hs = q.size(-2), q.size(-1)
    wei = q @ k.transpose(-2, -1) * hs**-0.5  # (B, nh, T, T); scaled by the head size, not C, keeps softmax soft
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
    """Rotary position embedding: turn each pair of channels of q or k by an angle that grows with the
    position, so q·k depends on how far apart two tokens are. x: (B, nh, T, hs); cos, sin: (T, hs/2)."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, nh, T, hs/2) each
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, nh, T, hs)


class CausalSelfAttention(nn.Module):
    """Multi-head masked self-attention, all heads in one batched op (attention_reference is the math)."""

    def __init__(self, n_embd, n_head, dropout):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)  # query, key, value of every head at once
        self.c_proj = nn.Linear(n_embd, n_embd, bias=False)  # mixes the heads back into the residual stream
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        # QK-norm: unit-RMS queries and keys keep the attention logits bounded, which lets a higher learning
        # rate train stably (part of the 1.61 -> 1.54 gain measured on CPU, see README)
        q, k = F.rms_norm(q, (q.size(-1),)), F.rms_norm(k, (k.size(-1),))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        # flash attention on a GPU; the same numbers as attention_reference(q, k, v)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, nh, T, hs)
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
        # ReLU squared: the lecture's ReLU, squared; part of the 1.61 -> 1.54 gain measured on CPU (README)
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

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.n_embd)
        # Positions enter as rotations of q and k (apply_rotary) instead of a learned position table
        # added to the tokens: part of the same measured gain (README), and nothing to learn
        cos, sin = rotary_tables(config.block_size, config.n_embd // config.n_head)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config.n_embd, config.n_head, config.dropout) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # N(0, 0.02) makes the first logits near zero, so the loss starts at ln(vocab_size): every
        # character equally likely. Residual projections shrink by 1/sqrt(2 * n_layer) so the stream's
        # variance does not grow with depth (GPT-2).
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * config.n_layer) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.drop(self.token_embedding_table(idx))  # (B, T, C)
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]  # (T, hs/2)
        for block in self.blocks:
            x = block(x, cos, sin)  # (B, T, C)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(B * T, -1).float(), targets.reshape(B * T))
        return logits, loss

    @torch.no_grad()
    def stream(self, idx, max_new_tokens, temperature=1.0, top_k=0):
        """Yield the next token, (B, 1), max_new_tokens times, continuing idx (B, T). Runs in eval mode
        (no dropout) without gradients and then restores the mode it found."""
        was_training = self.training
        self.eval()
        try:
            for _ in range(max_new_tokens):
                idx_cond = idx[:, -self.config.block_size:]  # the model sees at most block_size characters
                logits, _ = self(idx_cond)
                logits = logits[:, -1, :].float()  # (B, vocab_size): only the last position predicts anew
                if temperature == 0:  # greedy: no division by zero, the likeliest character
                    idx_next = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
                else:
                    logits = logits / temperature
                    if top_k:
                        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                        logits[logits < v[:, [-1]]] = float("-inf")
                    idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)  # (B, 1)
                idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
                yield idx_next
        finally:
            self.train(was_training)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=0):
        """idx (B, T) followed by max_new_tokens sampled tokens: (B, T + max_new_tokens)."""
        return torch.cat([idx, *self.stream(idx, max_new_tokens, temperature, top_k)], dim=1)


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(path, checkpoint):
    """Write to a temporary file, then rename over the old one: a crash or Ctrl-C mid-save leaves the previous
    checkpoint whole, never half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        torch.save(checkpoint, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path):
    """weights_only=True: a checkpoint holds tensors and plain values, and can never run code."""
    if not os.path.isfile(path):
        raise UsageError(f"no checkpoint at {path}; train one first with `python gpt.py` (or set --ckpt_path)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        GPTConfig(**checkpoint["config"]), checkpoint["model"], checkpoint["chars"]
    except Exception as e:
        raise UsageError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}); "
                         "delete it and train again") from None
    return checkpoint


def model_from_checkpoint(checkpoint, device):
    model = GPT(GPTConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["model"])
    return model.to(device)


def write(model, prompt, chars, hp, device):
    """Stream max_new_tokens characters after the prompt to stdout as they are produced."""
    unknown = sorted(set(prompt) - set(chars))
    if unknown:
        raise UsageError(f"the prompt has characters the model never saw: {''.join(unknown)!r}; "
                         f"it knows {show_vocab(chars)}")
    encode, decode = tokenizer(chars)
    torch.manual_seed(hp.seed)
    idx = torch.tensor([encode(prompt)], dtype=torch.long, device=device)  # (1, T)
    print(prompt, end="", flush=True)
    for idx_next in model.stream(idx, hp.max_new_tokens, hp.temperature, hp.top_k):
        print(decode(idx_next[0].tolist()), end="", flush=True)
    print()


# ----------------------------------------------------------------------------- train
def run(argv):
    global hp, world_size
    defaults = Hyperparameters()
    overrides = parse_overrides(argv, defaults)
    # torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; a plain `python gpt.py` is one process, rank 0
    ddp = "RANK" in os.environ
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    master = rank == 0
    log = print if master else (lambda *args, **kwargs: None)

    device = pick_device(overrides.get("device", defaults.device))
    small = not device.startswith("cuda")
    hp = replace(defaults, **{**(SMALL_DEFAULTS if small else {}), **overrides})  # explicit overrides win
    check(hp, world_size)
    if ddp and device == "cuda":
        device = f"cuda:{local_rank}"  # one GPU per process
        torch.cuda.set_device(device)
    ckpt_path = hp.ckpt_path if "ckpt_path" in overrides else os.path.join(HERE, hp.ckpt_path)
    torch.manual_seed(hp.seed + rank)  # each rank draws different batches; DDP copies rank 0's weights

    if hp.sample:
        checkpoint = load_checkpoint(ckpt_path)
        model = model_from_checkpoint(checkpoint, device)
        return write(model, hp.prompt or "\n", checkpoint["chars"], hp, device)

    # ---- data: read the text, look at it, tokenize it, split it
    from_default = "input" not in overrides
    path = os.path.join(HERE, hp.input) if from_default else hp.input
    text = read_text(path, hp.data_url if from_default else None)
    chars = sorted(set(text))  # the vocabulary: every distinct character, in code point order
    log(f"text: {path}, {len(text):,} characters, vocabulary of {len(chars)}: {show_vocab(chars)}")
    load_data(text, chars, device)
    del text

    checkpoint = None
    if hp.resume:
        checkpoint = load_checkpoint(ckpt_path)
        if checkpoint["chars"] != chars:
            new, gone = set(chars) - set(checkpoint["chars"]), set(checkpoint["chars"]) - set(chars)
            raise UsageError(f"the text's vocabulary differs from the checkpoint's (new: {''.join(sorted(new))!r}, "
                             f"missing: {''.join(sorted(gone))!r}); resume on the text it was trained on")

    # ---- processes: from here on every rank must take part, and leave through the finally below
    if ddp:
        import torch.distributed as dist
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    try:
        train(hp, chars, device, ckpt_path, checkpoint, ddp, master, log, small, overrides)
    finally:
        if ddp:
            dist.destroy_process_group()


def train(hp, chars, device, ckpt_path, checkpoint, ddp, master, log, small, overrides):
    if ddp:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel as DDP
    cuda = device.startswith("cuda")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    # bf16 autocast only where the GPU supports it (T4 and V100 do not); fp32 on mps and cpu
    bf16 = cuda and torch.cuda.is_bf16_supported()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else nullcontext()

    config = GPTConfig(len(chars), hp.block_size, hp.n_layer, hp.n_head, hp.n_embd, hp.dropout)
    if checkpoint:
        config = GPTConfig(**{**checkpoint["config"], "dropout": hp.dropout})  # the architecture it was built with
    model = GPT(config).to(device)
    # AdamW, with weight decay on matrices only: biases, LayerNorm gains and the like are not decayed
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": hp.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=hp.learning_rate, betas=(0.9, 0.95), fused=cuda)
    step, best_val, elapsed_before = 0, float("inf"), 0.0
    if checkpoint:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step, best_val, elapsed_before = checkpoint["step"], checkpoint["best_val_loss"], checkpoint["elapsed"]
        log(f"resumed from {ckpt_path}: step {step}, best val loss {best_val:.4f}")

    why = "" if not small else ("small default for a CPU (the lecture's model needs ~17 h on 2 cores)"
                                if device == "cpu" else f"small default for {device}")
    log(f"device {device}{', bf16 autocast' if bf16 else ''}; {why or 'GPU default: the lecture model'}"
        f"{'; overridden: ' + ', '.join(sorted(overrides)) if overrides else ''}")
    log(f"model: {config.n_layer} layers, {config.n_head} heads, {config.n_embd} wide, block {config.block_size}, "
        f"dropout {config.dropout}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    tokens_per_step = hp.batch_size * hp.block_size
    log(f"batch: {hp.batch_size} x {hp.block_size} = {tokens_per_step:,} tokens per step"
        + (f", split over {world_size} processes ({hp.batch_size // world_size} each; grow it with --batch_size)" if ddp else "")
        + f"; {hp.max_iters:,} steps" + (f" or {hp.max_time:g} s, whichever ends first" if hp.max_time else ""))

    t0 = time.time() - elapsed_before  # the time budget counts compile time, and carries over a resume
    train_model = model
    if hp.compile:
        # torch.compile needs a C++ compiler (and Triton on a GPU); a laptop without one trains eager
        try:
            train_model = torch.compile(model)
            with autocast:
                _, loss = train_model(*get_batch("train"))
            loss.backward()  # compiles the backward graph too, so the first timed steps are real steps
            model.zero_grad(set_to_none=True)
            log(f"compiled in {time.time() - t0 - elapsed_before:.1f} s")
        except Exception as e:
            train_model = model
            model.zero_grad(set_to_none=True)
            log(f"torch.compile failed ({type(e).__name__}: {str(e).strip().splitlines()[0][:120]}); "
                "training eager, which is ~20% slower (--compile=false skips the attempt)")
    if ddp:  # averages the gradients of all ranks in backward()
        train_model = DDP(train_model, device_ids=[int(device.split(":")[1])] if cuda else None)

    def snapshot(step, best_val, elapsed):
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "config": asdict(config),
                "hparams": asdict(hp), "chars": chars, "step": step, "best_val_loss": best_val, "elapsed": elapsed}

    # Ctrl-C asks the loop to stop at the next step boundary, so that it can still evaluate, keep the best
    # checkpoint and write a sample; a second Ctrl-C stops at once
    interrupted, t_log, step_log, eval_seconds, dt = False, time.time(), step, 0.0, None

    def on_ctrl_c(signum, frame):
        nonlocal interrupted
        if interrupted:
            raise KeyboardInterrupt
        interrupted = True
        log("\ninterrupted: finishing with the best checkpoint (Ctrl-C again to quit now)")

    main_thread = threading.current_thread() is threading.main_thread()  # where signal handlers live
    previous_handler = signal.signal(signal.SIGINT, on_ctrl_c) if main_thread else None
    try:
        while True:
            elapsed = time.time() - t0
            if ddp:  # every rank must agree on the schedule and on when to stop, or one would wait forever
                agreed = torch.tensor([elapsed, float(interrupted)], device=device)
                dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
                elapsed, interrupted = agreed[0].item(), bool(agreed[1].item())
            last = step >= hp.max_iters or (hp.max_time > 0 and elapsed >= hp.max_time) or interrupted
            # the fraction of the budget spent: by steps or by time, whichever is further along
            progress = max(step / max(hp.max_iters, 1), elapsed / hp.max_time if hp.max_time else 0.0)

            if master and (step % hp.eval_interval == 0 or last):
                t_eval = time.time()
                losses = estimate_loss(model, autocast)
                saved = ""
                if losses["val"] < best_val:  # a worse estimate never overwrites a better checkpoint
                    best_val = losses["val"]
                    save_checkpoint(ckpt_path, snapshot(step, best_val, elapsed))
                    saved = ", saved"
                eval_seconds += time.time() - t_eval
                log(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}{saved} | "
                    f"{speed(dt, tokens_per_step)} | {clock(elapsed)} elapsed, {eta(hp, step, elapsed, progress, dt)}")
            if last:
                break

            # learning rate: linear warmup, then a cosine from learning_rate down to min_lr over the budget
            if step < hp.warmup_iters:
                lr = hp.learning_rate * (step + 1) / hp.warmup_iters
            else:
                lr = hp.min_lr + 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))) * (hp.learning_rate - hp.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            xb, yb = get_batch("train")
            with autocast:
                _, loss = train_model(xb, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if hp.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), hp.grad_clip)
            optimizer.step()
            step += 1

            if step % hp.log_interval == 0:
                loss_value = loss.detach().float()
                if ddp:
                    dist.all_reduce(loss_value)
                    loss_value /= world_size
                loss_value = loss_value.item()  # the only host sync of a training step, once per log line
                if not math.isfinite(loss_value):
                    raise UsageError(f"the loss became {loss_value} at step {step}; the best checkpoint ({ckpt_path}, "
                                     f"val {best_val:.4f}) is kept; try a lower --learning_rate (now {hp.learning_rate:g})")
                now = time.time()
                dt = (now - t_log - eval_seconds) / (step - step_log)  # seconds per step, evaluations left out
                log(f"step {step}: loss {loss_value:.4f} | lr {lr:.2e} | {speed(dt, tokens_per_step)} | "
                    f"{clock(now - t0)} elapsed, {eta(hp, step, now - t0, progress, dt)}")
                t_log, step_log, eval_seconds = now, step, 0.0
    finally:  # the handler is only for this loop; a notebook gets its usual Ctrl-C back
        if main_thread:
            signal.signal(signal.SIGINT, previous_handler)

    if ddp:  # a check that data parallelism did its job: every rank ends with the same weights
        checksum = sum(p.double().sum().item() for p in model.parameters())
        checksums = [None] * world_size
        dist.all_gather_object(checksums, checksum)
        log(f"ddp: parameter checksums of {world_size} ranks: {'identical' if len(set(checksums)) == 1 else 'DIFFERENT'} "
            f"({checksum:.6f})")
    if not master:
        return
    # ---- the best model: its loss on the whole validation split, then a sample
    best = load_checkpoint(ckpt_path) if os.path.isfile(ckpt_path) else snapshot(step, best_val, time.time() - t0)
    model.load_state_dict(best["model"])
    capped = len(val_data) > hp.eval_chars + 1
    loss = split_loss(model, val_data, config.block_size, hp.eval_chars, autocast=autocast)
    print(f"best checkpoint: step {best['step']} ({ckpt_path}); whole validation split"
          f"{f' (capped at --eval_chars={hp.eval_chars:,} of {len(val_data):,} characters)' if capped else ''}:")
    print(f"final val loss {loss:.4f}")
    print(f"total time {clock(time.time() - t0)}; a sample from the best checkpoint:")
    write(model, "\n", chars, hp, device)


def speed(seconds_per_step, tokens_per_step):
    if seconds_per_step is None:
        return "speed not measured yet"
    return f"{seconds_per_step * 1000:.0f} ms/step, {tokens_per_step / seconds_per_step / 1000:.1f}k tok/s"


def clock(seconds):
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


def eta(hp, step, elapsed, progress, seconds_per_step=None):
    """Time left: by the time budget, or by the steps left at the recent speed, whichever is sooner."""
    left = [hp.max_time - elapsed] if hp.max_time else []
    if seconds_per_step:
        left.append((hp.max_iters - step) * seconds_per_step)
    elif progress > 0:
        left.append(elapsed * (1 - progress) / progress)
    return f"~{clock(max(min(left), 0))} left" if left else "time left unknown"


def main(argv=None):
    try:
        run(sys.argv if argv is None else argv)
    except UsageError as e:
        if int(os.environ.get("RANK", 0)) == 0:  # under torchrun every rank fails alike; one says so
            print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
