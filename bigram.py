"""
bigram.py: the baseline of the lecture "Let's build GPT: from scratch, in code, spelled out". Each character
predicts the next from a table of vocab_size x vocab_size scores, looking at nothing before it. Its loss
(~2.49) is what gpt.py's attention has to beat.

    python bigram.py                           train (seconds on a CPU), then write
    python bigram.py --max_iters=500           override any hyperparameter; --help lists them all
    python bigram.py --input=my_text.txt       train on any UTF-8 text
In a notebook, paste it into a cell whose last line is result = main(["bigram.py", "--max_iters=500"]).
"""
import hashlib
import inspect
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from types import SimpleNamespace

import torch
import torch.nn as nn
from torch.nn import functional as F

# ----------------------------------------------------------------------------- hyperparameters
@dataclass
class Hyperparameters:
    batch_size: int = 32        # sequences per optimiser step
    block_size: int = 8         # context length: a bigram only ever uses the last character of it
    max_iters: int = 3000       # optimiser steps
    eval_interval: int = 300    # steps between train/val estimates, and the last step
    eval_iters: int = 200       # batches per estimate
    learning_rate: float = 1e-2 # AdamW; a single table tolerates a large step
    seed: int = 1337            # one seed makes a run, and a sample, repeatable
    input: str = "input.txt"    # the text to train on; the default is looked for beside this script
    eval_chars: int = 1_000_000 # the final validation loss reads at most this many characters
    max_new_tokens: int = 500   # characters to write at the end

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
class BigramLanguageModel(nn.Module):

    def __init__(self, vocab_size):
        super().__init__()
        # row i holds the scores (logits) of every character that may follow character i
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        logits = self.token_embedding_table(idx)  # (B, T, vocab_size)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens):
        """idx (B, T) followed by max_new_tokens sampled tokens, (B, T + max_new_tokens)."""
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -1:])  # only the last character matters
            probs = F.softmax(logits[:, -1, :], dim=-1)  # (B, vocab_size)
            idx_next = torch.multinomial(probs, num_samples=1)  # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
        return idx

# ----------------------------------------------------------------------------- main: train, then write
def main(argv=None):
    """What `python bigram.py` does: train, report the final val loss and write a sample. It returns what
    the run made (model, encode, decode), for a notebook's next cell."""
    global hp
    with one_line_errors():  # a bad input or setting ends with one line and exit status 2 (plumbing)
        hp = configure(argv)
        torch.manual_seed(hp.seed)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        text = read_text(hp.input, download_if_missing=hp.input == DEFAULT_INPUT)
        chars = sorted(set(text))  # the vocabulary: every distinct character, in code point order
        print(f"text: {hp.input}, {len(text):,} characters, vocabulary of {len(chars)}: {show_vocab(chars)}")
        encode, decode = tokenizer(chars)
        load_data(text, encode, device)

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
        context = torch.tensor([encode("\n")], dtype=torch.long, device=device)  # (1, 1)
        print(decode(model.generate(context, hp.max_new_tokens)[0].tolist()))
        return SimpleNamespace(model=model, encode=encode, decode=decode)

# ---- plumbing: settings and files, for the code above; skip it on a first read
class UsageError(Exception):
    """A bad input or setting: reported as one line on stderr with exit status 2, never a traceback."""

@contextmanager
def one_line_errors():
    try:
        yield
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)

HERE = os.path.dirname(os.path.abspath(globals().get("__file__", "bigram.py")))  # a notebook has no __file__
DEFAULT_INPUT = os.path.join(HERE, "input.txt")

def configure(argv):
    """The defaults, then the overrides, checked. A notebook kernel's own argv is not for this script."""
    argv = (sys.argv[:1] if "ipykernel" in sys.modules else sys.argv) if argv is None else argv
    if argv and argv[0].startswith("-"):  # main(["--max_iters=5"]), with no program name
        argv = ["bigram.py", *argv]
    if "-h" in argv or "--help" in argv:
        print_help(argv[0])
        sys.exit(0)
    settings = replace(Hyperparameters(input=DEFAULT_INPUT), **dict(parse_arg(arg) for arg in argv[1:]))
    for f in fields(settings):
        least = 0 if f.name in ("max_iters", "max_new_tokens", "seed") else 1
        if f.type is int and getattr(settings, f.name) < least:
            raise UsageError(f"--{f.name} must be at least {least}, not {getattr(settings, f.name)}")
    if not settings.learning_rate >= 0:
        raise UsageError(f"--learning_rate must be >= 0, not {settings.learning_rate}")
    return settings

def parse_arg(arg):
    """--name=value → (name, value of the default's type); 1e4 is an int, 2.5 is not."""
    kinds = {f.name: f.type for f in fields(Hyperparameters)}
    name, _, text = arg[2:].partition("=")
    if not arg.startswith("--") or name not in kinds:
        raise UsageError(f"unknown argument {arg!r}: settings take the form --name=value, with a name among "
                         f"{', '.join(kinds)} (--help says what each means)")
    kind = kinds[name]
    try:
        if kind is int and not text.lstrip("+-").replace("_", "").isdigit() and float(text).is_integer():
            text = str(int(float(text)))  # 1e4 is 10000; 2.5 stays an error
        return name, kind(text)
    except ValueError:
        message = f"--{name} takes {kind.__name__} values (like --{name}={getattr(Hyperparameters(), name)})"
        raise UsageError(f"{message}, not {text!r}") from None

def print_help(program):
    """Every setting with its default and its meaning, read from the comments of Hyperparameters."""
    source = "".join(inspect.findsource(print_help)[0])  # this file, or the notebook cell it was pasted into
    meanings = dict(re.findall(r"^    (\w+): \w+ = .*?\s+# (.*)$", source, re.M))
    print(f"usage: python {os.path.basename(program)} [--name=value ...]\n\nsettings, with their defaults:")
    for f in fields(Hyperparameters):
        print(f"  --{f.name}={f.default!r}\n        {meanings.get(f.name, '')}")

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

if __name__ == "__main__":
    main()
