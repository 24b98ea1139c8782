"""bigram.py: the baseline of the lecture "Let's build GPT: from scratch, in code, spelled out": each
character predicts the next from a vocab_size x vocab_size table of scores; gpt.py must beat its loss, ~2.49.
Run: python bigram.py [--max_iters=500 --input=my_text.txt ...] (--help lists all), or %run it in a notebook."""
import argparse
import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass, field, fields

import torch
import torch.nn as nn
from torch.nn import functional as F

# ----------------------------------------------------------------------------- hyperparameters
@dataclass
class Hyperparameters:  # each field's help is its meaning, which --help shows
    batch_size: int = field(default=32, metadata={"help": "sequences per optimiser step"})
    block_size: int = field(default=8, metadata={"help": "context length; a bigram reads its last character"})
    max_iters: int = field(default=3000, metadata={"help": "optimiser steps"})
    eval_interval: int = field(default=300, metadata={"help": "steps between train/val loss estimates"})
    eval_iters: int = field(default=200, metadata={"help": "batches per estimate"})
    learning_rate: float = field(default=1e-2, metadata={"help": "AdamW's; large, as a tiny model allows"})
    seed: int = field(default=1337, metadata={"help": "seeds the table, the batches and the sample"})
    input: str = field(default="input.txt", metadata={"help": "the UTF-8 text, looked for beside this file"})
    eval_chars: int = field(default=1_000_000, metadata={"help": "the final loss reads at most this many"})
    max_new_tokens: int = field(default=500, metadata={"help": "characters to write at the end"})

hp = Hyperparameters()  # the run's settings: main() sets them from the command line
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
class BigramLanguageModel(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        # row i holds the scores (logits) of every character that may follow character i
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        logits = self.token_embedding_table(idx)  # (B, T, vocab_size)
        loss = None if targets is None else F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens):  # idx (B, T) -> (B, T + max_new_tokens)
        for _ in range(max_new_tokens):
            logits, _ = self(idx)  # the whole history, as gpt.py will need, though a bigram reads the last
            probs = F.softmax(logits[:, -1, :], dim=-1)  # (B, vocab_size)
            idx_next = torch.multinomial(probs, num_samples=1)  # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
        return idx

# ----------------------------------------------------------------------------- main: train, then write
def main(argv=None):
    """Train, report the final val loss and write a sample; model, encode and decode are returned."""
    global hp
    try:
        hp, overrides = configure(argv)
        torch.manual_seed(hp.seed)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        chars = load_data(find_text(hp.input, download_if_missing="input" not in overrides), device)
        encode, decode = tokenizer(chars)
        check_memory(len(chars), device)  # the table, its gradient and AdamW's two moments (plumbing)
        model = BigramLanguageModel(len(chars)).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=hp.learning_rate)
        for step in range(hp.max_iters + 1):
            if step % hp.eval_interval == 0 or step == hp.max_iters:  # the last step always evaluates
                losses = estimate_loss(model)
                print(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
            if step == hp.max_iters:
                break
            xb, yb = get_batch("train", hp.batch_size)
            _, loss = model(xb, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        print(f"final val loss {split_loss(model, val_data):.4f}")
        context = torch.zeros((1, 1), dtype=torch.long, device=device)  # id 0: "\n" in tiny-shakespeare
        print(decode(model.generate(context, hp.max_new_tokens)[0].tolist()))
        return argparse.Namespace(model=model, encode=encode, decode=decode)
    except UsageError as e:  # a bad input or setting ends with one line and exit status 2
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except SystemExit as e:  # --help ends with status 0, which in a notebook only prints
        if e.code:
            raise

# ---- plumbing: settings and files, for the code above; skip it on a first read
class UsageError(Exception):
    """A bad input or setting: reported as one line on stderr with exit status 2, never a traceback."""

def configure(argv):
    """The command line's settings, --name=value for each field of Hyperparameters, checked."""
    if argv is None:  # a script's own, not a pasted cell's or an importer's (the kernel's: -f kernel.json)
        argv = sys.argv[1:] if __name__ == "__main__" and "__file__" in globals() else []
    elif argv and os.path.basename(argv[0]) == os.path.basename(globals().get("__file__", "bigram.py")):
        argv = argv[1:]  # main(["bigram.py", ...]) as well as main([...])
    parser = argparse.ArgumentParser(usage="bigram.py [--name=value ...]", allow_abbrev=False)
    for f in fields(Hyperparameters):
        parser.add_argument(f"--{f.name}", type=integer if f.type is int else f.type,
                            default=argparse.SUPPRESS, help=f"{f.metadata['help']} (default: {f.default!r})")
    overrides = vars(parser.parse_args(argv))
    here = os.path.dirname(os.path.abspath(globals().get("__file__", "bigram.py")))  # a cell has no __file__
    settings = Hyperparameters(**{"input": os.path.join(here, "input.txt"), **overrides})
    for f in fields(settings):  # the step counts, seed and learning rate may be 0, the other numbers not
        value = getattr(settings, f.name)
        least = 0 if f.name in ("max_iters", "max_new_tokens", "seed", "learning_rate") else 1
        if f.type in (int, float) and not least <= value < float("inf"):  # NaN fails the test too
            raise UsageError(f"--{f.name} must be a finite number >= {least}, not {value}")
    return settings, overrides

def integer(text):  # 1e4 is 10000, as nanoGPT's configurator reads it; 2.5 is refused
    return int(float(text)) if "e" in text.lower() and float(text).is_integer() else int(text)

def check_memory(vocab_size, device):  # V² scores, each with a gradient and AdamW's two moments, in fp32
    need = 16 * vocab_size**2 / 1e9  # GB
    V = f"{vocab_size:,}"
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9 if hasattr(os, "sysconf") else need
    have = torch.cuda.mem_get_info()[0] / 1e9 if device == "cuda" else have  # a GPU's free memory
    if need > have:
        raise UsageError(f"a {V} x {V} bigram table needs {need:.1f} GB to train; {device} has {have:.1f} GB")

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

if __name__ == "__main__":
    result = main()  # under %run, result stays in the notebook
