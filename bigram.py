"""
bigram.py: the baseline of the lecture "Let's build GPT: from scratch, in code, spelled out".

A character-level bigram language model trained on tiny-shakespeare: each character predicts the next
from a table of vocab_size x vocab_size scores, looking at nothing before it. Its loss (~2.49) is the
floor that gpt.py's attention has to beat; `diff bigram.py gpt.py` shows the model and little else.

Run it:
    python bigram.py                              train (a few seconds on a CPU), then write
    python bigram.py --max_iters=500 --device=cpu override any hyperparameter below as --name=value
    python bigram.py --input=my_text.txt          train on any UTF-8 text
In a notebook, paste the file into a cell and run it; to override there, end the cell with
main(["bigram.py", "--max_iters=500"]) instead of main(). The kernel's own arguments are ignored.
"""
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, fields, replace

import torch
import torch.nn as nn
from torch.nn import functional as F


# ----------------------------------------------------------------------------- hyperparameters
@dataclass
class Hyperparameters:
    batch_size: int = 32        # sequences per optimiser step
    block_size: int = 8         # context length: a bigram only ever uses the last character of it
    max_iters: int = 3000       # optimiser steps
    eval_interval: int = 300    # steps between train/val estimates; the last step always evaluates
    eval_iters: int = 200       # batches per estimate
    learning_rate: float = 1e-2 # AdamW; a single table tolerates a large step
    device: str = "auto"        # auto picks cuda, then mps, then cpu
    seed: int = 1337            # one seed makes a run, and a sample, repeatable
    input: str = "input.txt"    # the training text; the default is looked for beside this script
    data_url: str = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
    eval_chars: int = 1_000_000 # the final validation loss reads at most this many characters
    max_new_tokens: int = 500   # characters to write at the end
    temperature: float = 1.0    # < 1 is more conservative, > 1 more adventurous, 0 always takes the likeliest
    top_k: int = 0              # sample among the k likeliest characters only (0: all)


HERE = os.path.dirname(os.path.abspath(globals().get("__file__", "bigram.py")))  # a notebook has no __file__


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


def check(hp):
    """Settings that would fail later, or silently do the wrong thing, are refused here."""
    for name in ("batch_size", "block_size", "eval_interval", "eval_iters", "eval_chars"):
        if getattr(hp, name) <= 0:
            raise UsageError(f"--{name} must be positive, not {getattr(hp, name)}")
    for name in ("max_iters", "max_new_tokens", "temperature", "top_k"):
        if getattr(hp, name) < 0:
            raise UsageError(f"--{name} must be >= 0, not {getattr(hp, name)}")
    if not hp.learning_rate > 0:
        raise UsageError(f"--learning_rate must be positive, not {hp.learning_rate}")


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
class BigramConfig:
    vocab_size: int
    block_size: int  # generate crops its context to this; the table itself reads only the last character


class BigramLanguageModel(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.config = config
        # row i holds the scores (logits) of every character that may follow character i
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        logits = self.token_embedding_table(idx)  # (B, T, vocab_size)
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
    global hp
    defaults = Hyperparameters()
    overrides = parse_overrides(argv, defaults)
    device = pick_device(overrides.get("device", defaults.device))
    hp = replace(defaults, **overrides)
    check(hp)
    torch.manual_seed(hp.seed)

    # ---- data: read the text, look at it, tokenize it, split it
    from_default = "input" not in overrides
    path = os.path.join(HERE, hp.input) if from_default else hp.input
    text = read_text(path, hp.data_url if from_default else None)
    chars = sorted(set(text))  # the vocabulary: every distinct character, in code point order
    print(f"text: {path}, {len(text):,} characters, vocabulary of {len(chars)}: {show_vocab(chars)}")
    load_data(text, chars, device)
    del text

    model = BigramLanguageModel(BigramConfig(len(chars), hp.block_size)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.learning_rate)
    print(f"device {device}; model: a {len(chars)} x {len(chars)} table, {sum(p.numel() for p in model.parameters()):,} parameters")

    t0 = time.time()
    for step in range(hp.max_iters + 1):
        if step % hp.eval_interval == 0 or step == hp.max_iters:  # the last step always evaluates
            losses = estimate_loss(model)
            print(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f} | "
                  f"{time.time() - t0:.1f} s elapsed")
        if step == hp.max_iters:
            break
        xb, yb = get_batch("train")
        _, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # ---- the trained model: its loss on the whole validation split, then a sample
    loss = split_loss(model, val_data, hp.block_size, hp.eval_chars)
    print(f"final val loss {loss:.4f}")
    write(model, "\n", chars, hp, device)


def main(argv=None):
    try:
        run(sys.argv if argv is None else argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
