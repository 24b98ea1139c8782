"""The specification of bigram.py and gpt.py, one property per test.

Runs in about two minutes on 2 CPU cores, with no input.txt and no network: every test writes its own
small text. Run: python -m pytest -q
"""
import ast
import hashlib
import http.server
import inspect
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
import weakref

import pytest
import torch

import bigram
import gpt

HERE = os.path.dirname(os.path.abspath(__file__))
# a tiny model and a short run, so that a whole script runs in seconds
TINY = ["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=8", "--max_iters=30",
        "--eval_interval=10", "--eval_iters=2", "--log_interval=10", "--max_time=0", "--compile=false",
        "--device=cpu", "--max_new_tokens=60", "--warmup_iters=5"]
TEXT = "".join(f"{w} the {v} of {w}, and {v} the {w}.\n" for w in
               ("king", "queen", "lord", "duke", "page", "maid") for v in ("love", "hate", "sword", "crown")) * 12
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


@pytest.fixture(autouse=True)
def restore_module_state(monkeypatch):
    """The scripts keep the lecture's globals (hp, the two splits); each test gets them back untouched."""
    for module in (gpt, bigram):
        for name in ("hp", "train_data", "val_data"):
            monkeypatch.setattr(module, name, getattr(module, name))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def use_data(module, text, **hp):
    """Set a script's hyperparameters and splits as its own main() would, from a file that holds text."""
    module.hp = module.Hyperparameters(**hp)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "text.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return module.load_data(path, "cpu")


def tiny_gpt(vocab_size, block_size=16, n_layer=2, dropout=0.0, trained=False):
    """A small GPT; trained=True gives its zero-initialised output projections random weights, as training
    would, so that attention and the feed-forward layers add to the residual stream."""
    model = gpt.GPT(gpt.GPTConfig(vocab_size, block_size, n_layer, n_head=2, n_embd=32, dropout=dropout))
    for name, p in model.named_parameters():
        if trained and name.endswith("c_proj.weight"):
            torch.nn.init.normal_(p, std=0.05)
    return model


def script(name, *args, cwd=HERE, timeout=120, env=None, launcher=(sys.executable,)):
    return subprocess.run([*launcher, os.path.join(HERE, name), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def run_main(argv, capsys):
    """gpt.main in this process: (exit status, stdout, stderr)."""
    try:
        gpt.main(argv)
        code = 0
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def wait_for_line(proc, text, timeout=60):
    """Read proc's output until a line holds text; fail, never hang, if proc ends or the time runs out first."""
    seen = []

    def read():
        for line in iter(proc.stdout.readline, ""):  # "" once proc's output is closed
            seen.append(line)
            if text in line:
                return
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        proc.kill()
    assert any(text in line for line in seen), f"no {text!r} in {timeout} s: {''.join(seen)[-1000:]}"


def final_loss(stdout):
    return float(re.search(r"final val loss ([0-9.]+)", stdout).group(1))


# ----------------------------------------------------------------------------- tokenizer and data
def test_encode_then_decode_gives_back_the_text():
    encode, decode = gpt.tokenizer(sorted(set(TEXT)))
    assert decode(encode(TEXT)) == TEXT


def test_vocabulary_is_the_sorted_unique_characters():
    chars = use_data(gpt, TEXT, block_size=8)
    assert chars == sorted(set(TEXT)) and len(chars) == len(set(TEXT))
    encode, _ = gpt.tokenizer(chars)
    assert encode("".join(chars)) == list(range(len(chars)))


def test_the_text_is_one_tensor_split_into_exactly_the_first_90_percent_and_the_last_10():
    chars = use_data(gpt, TEXT, block_size=8)
    n = int(0.9 * len(TEXT))
    assert len(gpt.train_data) == n and len(gpt.val_data) == len(TEXT) - n
    encode, _ = gpt.tokenizer(chars)
    assert gpt.train_data.tolist() == encode(TEXT[:n]) and gpt.val_data.tolist() == encode(TEXT[n:])


@pytest.mark.parametrize("size, dtype", [(60, torch.uint8), (256, torch.uint8), (257, torch.int16),
                                         (5000, torch.int16), (40000, torch.int32)])
def test_the_ids_round_trip_exactly_in_the_smallest_integer_type_that_holds_the_vocabulary(size, dtype, monkeypatch):
    rng = random.Random(size)  # any alphabet: ASCII, accents, Chinese, emoji beyond the 16-bit plane
    pool = [chr(c) for c in (*range(32, 127), *range(0xC0, 0x2FF), *range(0x4E00, 0x9FFF), *range(0x1F300, 0x1F5FF),
                             *range(0x20000, 0x2A6DF))]
    alphabet = rng.sample(pool, size)
    text = "".join(alphabet) + "".join(rng.choice(alphabet) for _ in range(3 * size))
    for module in (gpt, bigram):
        monkeypatch.setattr(module.code_points, "__defaults__", (4099,))  # pieces of 4,099 bytes: characters cut
        chars = use_data(module, text, block_size=8)
        data = torch.cat([module.train_data, module.val_data])
        assert chars == sorted(set(text)) and data.dtype == module.train_data.dtype == dtype
        assert module.tokenizer(chars)[1](data.tolist()) == text


@pytest.mark.parametrize("start", range(8186, 8193))  # a character of 1 to 4 bytes across the 8,192nd byte
def test_the_text_is_read_in_pieces_and_a_character_cut_between_two_is_kept_whole(start, tmp_path):
    path = tmp_path / "t.txt"
    text = "x" * start + "aé漢🙂" * 5  # 1, 2, 3 and 4 bytes a character
    path.write_text(text, encoding="utf-8")
    pieces = list(gpt.code_points(str(path), piece=3))
    assert all(len(p) <= 3 for p in pieces) and len(pieces) == math.ceil(len(text) / 3)
    assert "".join(chr(c) for p in pieces for c in p.tolist()) == text


@pytest.mark.parametrize("piece", [1, 2, 3, 4096])
@pytest.mark.parametrize("name", ["bigram", "gpt"])
def test_windows_line_ends_are_read_as_the_lectures_open_reads_them(name, piece, tmp_path, monkeypatch):
    module = {"bigram": bigram, "gpt": gpt}[name]
    monkeypatch.setattr(module.code_points, "__defaults__", (piece,))
    crlf = "First Citizen:\r\nBefore we proceed\r\n\r\nAll:\rSpeak.\r\n" * 50  # and an old Mac's lone \r
    path = tmp_path / "crlf.txt"
    path.write_bytes(crlf.encode("utf-8"))
    module.hp = module.Hyperparameters(block_size=8)
    chars = module.load_data(str(path), "cpu")
    with open(path, encoding="utf-8") as f:  # the lecture's open(): text mode
        lecture = f.read()
    assert "\r" not in chars and chars == sorted(set(lecture))
    assert "".join(chars[i] for i in torch.cat([module.train_data, module.val_data]).tolist()) == lecture


def test_get_batch_gives_batch_by_block_windows_and_targets_shifted_by_one():
    use_data(gpt, TEXT, block_size=12)
    x, y = gpt.get_batch("train", 5)
    assert x.shape == y.shape == (5, 12) and x.dtype == y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    windows = gpt.train_data.unfold(0, 13, 1)  # every run of 13 characters in the text
    for row_x, row_y in zip(x, y):  # x and y come from one such run: y[t] is the character after x[t]
        assert (windows == torch.cat([row_x, row_y[-1:]])).all(dim=1).any()


def test_get_batch_windows_stay_inside_their_split_and_reach_both_ends():
    gpt.hp = gpt.Hyperparameters(block_size=8)
    gpt.train_data, gpt.val_data = torch.arange(0, 50), torch.arange(1000, 1030)
    for split, data in (("train", gpt.train_data), ("val", gpt.val_data)):
        x, y = gpt.get_batch(split, 4000)
        assert x.min() >= data[0] and y.max() <= data[-1]
        # randint's exclusive bound is not an off-by-one: the first and the last window are both drawn
        assert x[:, 0].min() == data[0] and y[:, -1].max() == data[-1]


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("kind", ["bigram", "gpt"])
def test_logits_are_batch_by_time_by_vocab_and_there_is_no_loss_without_targets(kind):
    model = bigram.BigramLanguageModel(65) if kind == "bigram" else tiny_gpt(65)
    logits, loss = model(torch.randint(65, (3, 16)))
    assert logits.shape == (3, 16, 65) and loss is None


@pytest.mark.parametrize("kind", ["bigram", "gpt"])
def test_loss_at_init_is_that_of_a_uniform_guess(kind):
    torch.manual_seed(0)
    if kind == "gpt":  # the lecture-sized model, whose init the 0.02 scheme is for
        model = gpt.GPT(gpt.GPTConfig(65, 64, n_layer=6, n_head=6, n_embd=384))
    else:  # a bigram table starts N(0, 1); its first loss is ln(65) plus the spread of those scores
        model = bigram.BigramLanguageModel(65)
        torch.nn.init.normal_(model.token_embedding_table.weight, std=0.02)
    _, loss = model(torch.randint(65, (8, 64)), torch.randint(65, (8, 64)))
    assert abs(loss.item() - math.log(65)) < 0.1


@pytest.mark.parametrize("kind", ["bigram", "gpt"])
def test_a_few_hundred_steps_drive_the_loss_far_below_a_uniform_guess(kind):
    module = bigram if kind == "bigram" else gpt
    chars = use_data(module, TEXT, block_size=16)
    torch.manual_seed(0)
    model = bigram.BigramLanguageModel(len(chars)) if kind == "bigram" else tiny_gpt(len(chars))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        _, loss = model(*module.get_batch("train", 16))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    losses = module.estimate_loss(model)
    # the text repeats, so attention can learn it almost by heart; a bigram only the letter pairs
    assert losses["val"] < (0.2 if kind == "gpt" else 0.65) * math.log(len(chars))


def test_the_parameters_are_the_lectures_embedding_blocks_and_head_and_nothing_else():
    V, C, L = 65, 32, 3
    model = gpt.GPT(gpt.GPTConfig(V, 16, L, 2, C))
    block = 3 * C * C + C * C + 4 * C * C + 4 * C * C + 2 * 2 * C  # q, k, v; c_proj; the feed-forward; 2 LayerNorms
    assert sum(p.numel() for p in model.parameters()) == V * C + L * block + 2 * C + C * V
    assert [name for name, _ in model.named_children()] == ["token_embedding_table", "drop", "blocks", "ln_f",
                                                           "lm_head"]


@pytest.mark.parametrize("vocab_size", [65, 8191, 8192])
def test_every_parameter_that_the_log_counts_learns_from_a_batch_that_holds_every_character(vocab_size):
    torch.manual_seed(0)
    model = tiny_gpt(vocab_size, n_layer=1, trained=True)
    n = -(-vocab_size // 16) * 16  # whole windows of 16
    idx = (torch.randperm(n) % vocab_size).view(-1, 16)  # every character, as input and as target
    _, loss = model(idx, idx.roll(1))
    loss.backward()
    for name, p in model.named_parameters():  # every row of every matrix, every gain and bias
        assert (p.grad.reshape(len(p), -1) != 0).any(1).all(), name


def test_the_parameters_grow_linearly_with_the_vocabulary():
    count = lambda V: sum(p.numel() for p in gpt.GPT(gpt.GPTConfig(V, 16, 1, 2, 32)).parameters())
    # only the token embedding and the head grow with V, by n_embd numbers a character each
    assert count(4000) - count(65) == 2 * 32 * (4000 - 65) and count(20000) - count(4000) == 2 * 32 * 16000


def test_each_block_starts_as_the_identity():
    model = tiny_gpt(30)
    x = torch.randn(2, 10, 32)
    for block in model.blocks:  # the projections back into the residual stream start at zero
        assert torch.equal(block(x, model.rope_cos[:10], model.rope_sin[:10]), x)


def test_the_learning_rate_warms_up_holds_then_decays_linearly_to_min_lr():
    gpt.hp = gpt.Hyperparameters(learning_rate=1.0, min_lr=0.1, warmup_iters=10, cooldown_frac=0.4)
    assert gpt.get_lr(0, 0.0) == pytest.approx(0.1) and gpt.get_lr(9, 0.01) == 1.0
    assert gpt.get_lr(50, 0.3) == gpt.get_lr(80, 0.6) == 1.0  # held until the last 40% of the budget
    assert gpt.get_lr(90, 0.8) == pytest.approx(0.55) and gpt.get_lr(100, 1.0) == pytest.approx(0.1)
    assert gpt.get_lr(120, 1.2) == pytest.approx(0.1)  # a resumed run past its budget stays at min_lr


@pytest.mark.parametrize("muon", [True, False])
def test_with_muon_the_blocks_matrices_take_muon_and_every_other_parameter_adamw(muon):
    gpt.hp = gpt.Hyperparameters(muon=muon)
    model = tiny_gpt(30)
    optimizers = gpt.make_optimizers(model)
    owned = [[p for group in opt.param_groups for p in group["params"]] for opt in optimizers]
    assert sorted(map(id, sum(owned, []))) == sorted(map(id, model.parameters()))  # each once, none left out
    assert [type(opt) for opt in optimizers] == [torch.optim.AdamW] + [gpt.Muon] * muon
    if muon:
        matrices = {id(p) for name, p in model.named_parameters() if name.startswith("blocks.") and p.dim() == 2}
        assert {id(p) for p in owned[1]} == matrices and len(matrices) == 4 * 2  # 4 in each of 2 blocks


def test_orthogonalise_turns_a_matrix_into_about_u_v_transposed_in_fp32_on_a_cpu():
    torch.manual_seed(0)
    for shape in [(96, 288), (384, 96), (32, 32)]:
        grad = torch.randn(shape)
        before = grad.clone()
        out = gpt.orthogonalise(grad)
        assert out.dtype == torch.float32 and out.shape == shape and torch.equal(grad, before)
        U, _, Vh = torch.linalg.svd(grad, full_matrices=False)  # what it approximates: U V^T, all of G's
        assert torch.cosine_similarity(out.flatten(), (U @ Vh).flatten(), dim=0) > 0.97  # directions at 1
        singular = torch.linalg.svdvals(out)
        assert singular.min() > 0.5 and singular.max() < 1.3


def test_muon_steps_as_torch_optim_muon_does_up_to_bf16_rounding():
    torch.manual_seed(0)
    start = [torch.randn(96, 288), torch.randn(384, 96)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(3)]
    ours, theirs = ([torch.nn.Parameter(p.clone()) for p in start] for _ in range(2))
    optimizers = (gpt.Muon(ours, lr=0.01, weight_decay=0.3),  # torch's iterates in bf16 on a CPU
                  torch.optim.Muon(theirs, lr=0.01, weight_decay=0.3, adjust_lr_fn="match_rms_adamw"))
    for step in grads:
        for params, optimizer in zip((ours, theirs), optimizers):
            for p, g in zip(params, step):
                p.grad = g.clone()
            optimizer.step()
    for p0, a, b in zip(start, ours, theirs):
        moved, expected = a.detach() - p0, b.detach() - p0
        assert (moved - expected).norm() < 0.02 * expected.norm()
    assert set(optimizers[0].state[ours[0]]) == {"momentum_buffer"}  # torch's name: checkpoints carry over


def test_gpt_is_causal_a_token_never_changes_the_logits_before_it():
    torch.manual_seed(0)
    model = tiny_gpt(40, trained=True).eval()
    idx = torch.randint(40, (2, 16))
    for t in (0, 7, 15):
        changed = idx.clone()
        changed[:, t] = (changed[:, t] + 1) % 40
        before, after = model(idx)[0], model(changed)[0]
        assert torch.allclose(before[:, :t], after[:, :t], atol=1e-6)
        assert not torch.allclose(before[:, t:], after[:, t:], atol=1e-6)


def test_batched_attention_equals_the_explicit_masked_softmax_math():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 11, 8) for _ in range(3))  # (B, nh, T, hs)
    fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(fused, gpt.attention_reference(q, k, v), atol=1e-5)


def test_attention_module_matches_the_reference_with_its_own_projections():
    torch.manual_seed(0)
    model = tiny_gpt(30, trained=True).eval()
    attn, x = model.blocks[0].attn, torch.randn(2, 10, 32)
    cos, sin = model.rope_cos[:10], model.rope_sin[:10]
    q, k, v = (t.view(2, 10, 2, 16).transpose(1, 2) for t in attn.c_attn(x).split(32, dim=2))
    q, k = (gpt.apply_rotary(torch.nn.functional.rms_norm(t, (16,)), cos, sin) for t in (q, k))
    expected = attn.c_proj(gpt.attention_reference(q, k, v).transpose(1, 2).reshape(2, 10, 32))
    assert torch.allclose(attn(x, cos, sin), expected, atol=1e-5)


def test_rotary_embedding_makes_attention_depend_on_relative_position_only():
    cos, sin = gpt.rotary_tables(32, 8)
    q, k = torch.randn(8), torch.randn(8)
    turned = lambda x, t: gpt.apply_rotary(x.view(1, 1, 1, 8), cos[t:t + 1], sin[t:t + 1]).flatten()
    assert torch.allclose(turned(q, 5) @ turned(k, 2), turned(q, 20) @ turned(k, 17), atol=1e-5)


@pytest.mark.parametrize("n", [5, 40])  # 40 > block_size: the context is cropped as it grows
def test_generate_returns_the_prompt_and_n_tokens_all_inside_the_vocabulary(n):
    torch.manual_seed(0)
    for model in (tiny_gpt(20, block_size=16), bigram.BigramLanguageModel(20)):
        prompt = torch.randint(20, (2, 3))
        out = model.generate(prompt, n)
        assert out.shape == (2, 3 + n) and torch.equal(out[:, :3], prompt)
        assert out.min() >= 0 and out.max() < 20


def test_generate_samples_in_eval_mode_and_restores_training_mode():
    model = tiny_gpt(20, dropout=0.5, trained=True).train()
    torch.manual_seed(0)
    first = model.generate(torch.zeros(1, 1, dtype=torch.long), 30, temperature=0)
    second = model.generate(torch.zeros(1, 1, dtype=torch.long), 30, temperature=0)
    assert torch.equal(first, second)  # dropout active would make greedy decoding differ
    assert model.training


def test_temperature_zero_is_greedy_and_top_k_past_the_vocabulary_is_clamped():
    torch.manual_seed(0)
    model = tiny_gpt(20)
    idx = torch.randint(20, (1, 4))
    greedy = model.generate(idx, 1, temperature=0)[0, -1]
    assert greedy == model(idx)[0][0, -1].argmax()
    assert model.generate(idx, 10, top_k=1000).shape == (1, 14)
    assert torch.equal(model.generate(idx, 10, top_k=1), model.generate(idx, 10, temperature=0))


def test_the_same_seed_gives_identical_losses_twice(text_file, capsys):
    runs = []
    for i in range(2):
        _, out, _ = run_main(["gpt.py", f"--input={text_file}", *TINY, f"--ckpt_path={text_file.parent}/s{i}.pt"],
                             capsys)
        runs.append([line.split(" | ")[0] for line in out.splitlines() if "loss" in line])
    assert runs[0] == runs[1] and len(runs[0]) >= 4


def test_split_loss_scores_every_character_of_the_split_once():
    torch.manual_seed(0)
    model = tiny_gpt(20, block_size=8, trained=True).eval()
    data = torch.randint(20, (8 * 5 + 3,))  # 5 full windows; the last 2 characters have no full window
    windows = [(data[i:i + 8], data[i + 1:i + 9]) for i in range(0, 40, 8)]
    gpt.hp = gpt.Hyperparameters(block_size=8)
    expected = sum(model(x[None], y[None])[1].item() for x, y in windows) / 5
    assert gpt.split_loss(model, data, rows=2) == pytest.approx(expected, rel=1e-5)
    gpt.hp = gpt.Hyperparameters(block_size=8, eval_chars=16)
    assert gpt.split_loss(model, data) == pytest.approx(sum(
        model(x[None], y[None])[1].item() for x, y in windows[:2]) / 2, rel=1e-5)


def test_estimate_loss_sees_the_same_batches_each_time_and_keeps_training_rng_apart():
    chars = use_data(gpt, TEXT, batch_size=4, block_size=8, eval_iters=3)
    model = tiny_gpt(len(chars), block_size=8)
    torch.manual_seed(1)
    first = gpt.estimate_loss(model)
    after_first = torch.randint(1000, (1,))
    torch.manual_seed(1)
    assert gpt.estimate_loss(model) == first and torch.randint(1000, (1,)) == after_first


def test_estimate_loss_uses_the_whole_batch_even_when_processes_split_training(monkeypatch):
    chars = use_data(gpt, TEXT, batch_size=8, block_size=8, eval_iters=2)
    monkeypatch.setattr(gpt, "WORLD_SIZE", 4)  # rank 0 evaluates alone, so it takes the whole batch
    rows = []
    model = tiny_gpt(len(chars), block_size=8)
    model.register_forward_pre_hook(lambda module, args: rows.append(args[0].shape[0]))
    gpt.estimate_loss(model)
    assert rows == [8] * 4


def test_the_lines_both_scripts_share_are_identical():
    for name in ("tokenizer", "load_data", "get_batch", "estimate_loss", "split_loss", "find_text", "code_points",
                 "integer", "UsageError"):
        assert inspect.getsource(getattr(gpt, name)) == inspect.getsource(getattr(bigram, name)), name
    assert gpt.TINY_SHAKESPEARE == bigram.TINY_SHAKESPEARE and gpt.TINY_SHAKESPEARE_URL == bigram.TINY_SHAKESPEARE_URL


# ----------------------------------------------------------------------------- hyperparameters
def test_overrides_are_parsed_to_the_type_of_their_default():
    _, _, pairs, _ = gpt.configure(["--max_iters=1e3", "--learning_rate=3e-4", "--compile=false", "--sample",
                                 "--device=cpu", "--prompt=a=b", "--resume=1", "--block_size=12"])
    assert pairs == {"max_iters": 1000, "learning_rate": 3e-4, "compile": False, "sample": True, "device": "cpu",
                     "prompt": "a=b", "resume": True, "block_size": 12}
    assert type(pairs["max_iters"]) is int and gpt.integer("123456789012345678901") == 123456789012345678901


@pytest.mark.parametrize("arg", ["--n_embed=64", "max_iters=10", "-x", "--max_i=5"])
def test_an_argument_that_is_not_a_known_setting_stops_before_anything_runs(arg, capsys):
    code, out, err = run_main(["gpt.py", *TINY, arg], capsys)  # tiny: a regression fails fast
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("usage: gpt.py [--name=value ...]") and f"error: unrecognized arguments: {arg}" in err


@pytest.mark.parametrize("arg", ["--max_iters=ten", "--max_iters=2.5", "--max_iters", "--compile=maybe",
                                 "--dropout=x", "--learning_rate=nan", "--max_time=inf", "--max_iters=1e-3"])
def test_an_unparsable_value_is_refused_with_its_expected_type(arg, capsys):
    code, out, err = run_main(["gpt.py", *TINY, arg], capsys)  # tiny: a regression fails fast
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(("error: ", "gpt.py: error: ")) and arg.split("=")[0] in err


def unwrapped(text):
    """Text with its whitespace taken out, so that argparse's wrapping to the terminal's width does not matter."""
    return "".join(text.split())


@pytest.mark.parametrize("name", ["gpt.py", "bigram.py"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_setting_with_its_default_and_meaning(name, flag):
    run = script(name, flag)
    module = gpt if name == "gpt.py" else bigram
    assert run.returncode == 0 and run.stderr == "" and run.stdout.startswith(f"usage: {name} [--name=value ...]")
    for f in module.fields(module.Settings if module is gpt else module.Hyperparameters):
        cuda = f", cuda: {f.metadata['cuda']!r}" if "cuda" in f.metadata else ""
        meaning = f.metadata["help"]
        assert len(meaning) > 10 and unwrapped(f"--{f.name} ") in unwrapped(run.stdout), f.name
        assert unwrapped(f"{meaning} (default: {f.default!r}{cuda})") in unwrapped(run.stdout), f.name
    assert name == "bigram.py" or unwrapped("width of the residual stream (default: 128, cuda: 384)") in unwrapped(
        run.stdout)


def test_help_says_how_to_make_a_run_repeat_exactly():
    meaning = next(f.metadata["help"] for f in gpt.fields(gpt.Hyperparameters) if f.name == "seed")
    assert "--max_time=0" in meaning  # under a time budget the number of steps depends on the clock


def test_a_scripts_own_arguments_are_used_and_a_kernels_are_not_by_a_pasted_cell_or_an_importer(monkeypatch):
    def run_as(name, namespace):  # the file's code in the namespace a notebook gives it, its settings only
        source = open(os.path.join(HERE, name), encoding="utf-8").read()
        exec(compile(source.replace("    result = main()", "    pass"), name, "exec"), namespace)
        return namespace["configure"](None)
    monkeypatch.setattr(sys, "argv", ["/x/ipykernel_launcher.py", "-f", "/run/kernel-1.json"])
    settings, _, overrides, _ = run_as("gpt.py", {"__name__": "__main__"})  # a pasted cell has no __file__
    assert overrides == {} and settings.n_layer == gpt.Hyperparameters().n_layer
    assert gpt.configure(None)[2] == {} and bigram.configure(None)[1] == {}  # import gpt; gpt.main()
    monkeypatch.setattr(sys, "argv", ["gpt.py", "--max_iters=5", "--device=cpu"])  # %run gpt.py ARGS
    assert run_as("gpt.py", {"__name__": "__main__", "__file__": "gpt.py"})[2] == {"max_iters": 5, "device": "cpu"}
    monkeypatch.setattr(sys, "argv", ["bigram.py", "--max_iters=5"])
    assert run_as("bigram.py", {"__name__": "__main__", "__file__": "bigram.py"})[0].max_iters == 5


def test_settings_without_the_program_name_are_not_mistaken_for_it():
    settings, _, overrides, _ = gpt.configure(["--max_iters=5", "--seed=7"])
    assert (settings.max_iters, settings.seed, overrides) == (5, 7, {"max_iters": 5, "seed": 7})
    settings, _ = bigram.configure(["--max_iters=5", "--seed=7"])
    assert (settings.max_iters, settings.seed) == (5, 7)


@pytest.mark.parametrize("name", ["gpt", "bigram"])
def test_only_the_scripts_own_name_is_taken_for_the_program_name(name):
    module = {"gpt": gpt, "bigram": bigram}[name]
    for argv in (["--input=my_code.py", "--seed=7"], ["my_code.py", "--seed=7"], [f"{HERE}/{name}.py", "--seed=7"]):
        try:
            settings = module.configure(argv)[0]
        except SystemExit:  # my_code.py is no setting: refused, never dropped
            assert argv[0] == "my_code.py"
            continue
        assert settings.seed == 7 and settings.input.endswith("my_code.py" if argv[0] == "--input=my_code.py" else
                                                              os.path.join(HERE, "input.txt"))


def test_bigram_refuses_what_gpt_refuses_and_its_help_in_a_notebook_only_prints(capsys):
    for module in (gpt, bigram):
        with pytest.raises(SystemExit) as stop:
            module.main(["--learning_rate=inf", "--max_iters=1"])
        assert stop.value.code == 2 and "--learning_rate must be a finite number >= 0, not inf" in capsys.readouterr().err
        assert module.main(["--help"]) is None and "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("speed, budget, layers", [(1.0, 100, 3), (1.0, 280, 3), (1.5, 280, 4), (1.0, 560, 4),
                                                   (0.5, 560, 3), (0.7, 1120, 4), (1.0, 1120, 6), (2.0, 560, 6)])
def test_on_a_cpu_the_time_budget_buys_the_model_that_the_machines_measured_speed_affords(speed, budget, layers,
                                                                                         monkeypatch, capsys):
    monkeypatch.setattr(gpt, "probe_speed", lambda device: speed * gpt.REFERENCE_SPEED)
    settings, device, overrides, _ = gpt.configure([f"--max_time={budget}", "--device=cpu"])
    chosen = gpt.size_for_budget(settings, device, overrides)
    assert chosen.n_layer == layers and chosen.weight_decay == (0.3 if layers == 3 else 1.0)
    assert f"buy {speed * budget:.0f} of its seconds" in capsys.readouterr().out  # one line says so


def test_a_shape_on_the_command_line_is_obeyed_and_other_named_settings_are_kept(monkeypatch):
    monkeypatch.setattr(gpt, "probe_speed", lambda device: gpt.REFERENCE_SPEED / 4)  # a slow machine
    for args, expected in ((["--n_embd=64"], (4, 64, 1.0)), (["--weight_decay=0.5"], (3, 96, 0.5))):
        settings, device, overrides, _ = gpt.configure(["--max_time=280", "--device=cpu", *args])
        chosen = gpt.size_for_budget(settings, device, overrides)
        assert (chosen.n_layer, chosen.n_embd, chosen.weight_decay) == expected


@pytest.mark.parametrize("args", [["--max_time=0"], ["--device=cpu", "--sample"]])
def test_without_a_time_budget_nothing_is_measured_or_chosen_so_a_run_repeats(args, monkeypatch):
    monkeypatch.setattr(gpt, "probe_speed", lambda device: pytest.fail("measured"))
    settings, device, overrides, _ = gpt.configure(["--device=cpu", *args])
    assert gpt.size_for_budget(settings, device, overrides) == settings


def test_the_probe_measures_a_speed_without_touching_the_random_generator():
    state = torch.get_rng_state()
    speed = gpt.probe_speed(torch.device("cpu"), rounds=1, steps=1)
    assert 100 < speed < 1e8 and torch.equal(torch.get_rng_state(), state)


def test_the_device_picks_its_column_of_defaults_and_editing_a_default_changes_the_run(monkeypatch):
    settings, device, _, _ = gpt.configure(["gpt.py", "--device=cpu"])
    assert (settings.n_layer, settings.max_time) == (4, 280.0)
    cuda = {f.name: f.metadata["cuda"] for f in gpt.fields(gpt.Hyperparameters) if "cuda" in f.metadata}
    assert (cuda["n_layer"], cuda["n_embd"], cuda["batch_size"], cuda["max_time"]) == (6, 384, 64, 0.0)
    source = inspect.getsource(gpt).replace("n_layer: int = setting(4,", "n_layer: int = setting(5,")
    module = types.ModuleType("edited_gpt")
    exec(compile(source, "edited_gpt", "exec"), module.__dict__)
    assert module.configure(["gpt.py", "--device=cpu"])[0].n_layer == 5


@pytest.mark.parametrize("changes, message", [({"n_embd": 100, "n_head": 3}, "n_head=3"),
                                              ({"n_embd": 36, "n_head": 4}, "even width"),
                                              ({"batch_size": 0}, "batch_size must be a finite number >= 1"),
                                              ({"n_layer": -1}, "n_layer must be a finite number >= 1"),
                                              ({"dropout": 1.0}, "dropout"),
                                              ({"learning_rate": -1.0}, "learning_rate must be a finite number >= 0")])
def test_impossible_settings_are_refused(changes, message):
    with pytest.raises(gpt.UsageError, match=message):
        gpt.check(gpt.Hyperparameters(**changes))


def test_an_unavailable_device_is_refused_with_the_usable_ones():
    for name in ("cuda", "mps", "tpu"):
        if name == "tpu" or not getattr(torch, name, torch.backends.mps).is_available():
            with pytest.raises(gpt.UsageError, match=f"--device={name} is not available here; usable: auto.*cpu"):
                gpt.pick_device(name)


def test_a_gpu_number_that_the_machine_lacks_is_refused_with_the_usable_ones(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda name: None)
    assert gpt.pick_device("cuda:0") == "cuda:0"
    with pytest.raises(gpt.UsageError, match="--device=cuda:5 is not available here; usable: auto, cuda, cuda:0, cpu$"):
        gpt.pick_device("cuda:5")


def test_under_torchrun_a_numbered_gpu_is_refused_since_each_process_takes_its_own(monkeypatch):
    monkeypatch.setattr(gpt, "WORLD_SIZE", 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(gpt.UsageError, match="--device=cuda:1: under torchrun each process takes the GPU of its"):
        gpt.pick_device("cuda:1")


def test_bf16_autocast_only_on_a_gpu_with_native_bf16(monkeypatch):
    asked = []
    native = {"t4": False, "a100": True}
    for gpu, has_it in native.items():
        monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                            lambda including_emulation=True, has_it=has_it: asked.append(including_emulation) or has_it)
        context = gpt.autocast(torch.device("cuda"))
        assert isinstance(context, torch.autocast) == has_it, gpu
    assert asked == [False, False]  # emulation does not count
    assert not isinstance(gpt.autocast(torch.device("cpu")), torch.autocast)


def test_nothing_is_read_downloaded_or_trained_at_import(tmp_path):
    probe = ("import builtins, urllib.request\n"
             "calls = []\n"
             "urllib.request.urlopen = lambda *a, **k: calls.append(a)\n"
             "real_open = builtins.open\n"
             "builtins.open = lambda f, *a, **k: calls.append(f) if str(f).endswith('.txt') else real_open(f, *a, **k)\n"
             "import gpt, bigram\n"
             "builtins.open = real_open\n"
             "print(gpt.train_data is None and bigram.train_data is None, calls)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=HERE, capture_output=True, text=True, timeout=60)
    assert out.stdout == "True []\n" and out.stderr == ""


# ----------------------------------------------------------------------------- the scripts, end to end
@pytest.mark.parametrize("name", ["bigram.py", "gpt.py"])
def test_a_short_run_prints_losses_the_final_val_loss_and_a_sample(name, text_file, tmp_path):
    args = [f"--input={text_file}", "--max_iters=300", "--eval_interval=100", "--eval_iters=2", "--max_new_tokens=60"]
    every = 100
    if name == "gpt.py":
        args, every = [f"--input={text_file}", *TINY, f"--ckpt_path={tmp_path / 'g.pt'}"], 10
    run = script(name, *args)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # no warnings either
    lines = run.stdout.splitlines()
    evals = [line for line in lines if line.startswith("step ") and "val loss" in line]
    assert [line.split(":")[0] for line in evals] == [f"step {i * every}" for i in range(4)]
    final = [line for line in lines if line.startswith("final val loss ")]
    assert len(final) == 1 and float(final[0].split()[-1]) < math.log(len(set(TEXT)))
    sample = "\n".join(lines[lines.index(final[0]) + 1 + (name == "gpt.py"):])
    assert len(sample) >= 60 and set(sample) <= set(TEXT)


def test_gpt_log_lines_give_speed_elapsed_time_and_time_left(text_file, tmp_path, capsys):
    _, out, _ = run_main(["gpt.py", f"--input={text_file}", *TINY, f"--ckpt_path={tmp_path / 'g.pt'}"], capsys)
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert len(lines) == 3 + 4  # a progress line every 10 steps, an evaluation every 10 and at step 0
    assert all(("tok/s" in line or line.startswith("step 0:")) and "elapsed" in line and "left" in line for line in lines)
    assert "the small default of a CPU or mps" in out and "parameters" in out


def test_main_returns_the_trained_model_and_the_tokenizer_for_the_next_notebook_cell(text_file, tmp_path, capsys):
    result = gpt.main(["gpt.py", f"--input={text_file}", *TINY, f"--ckpt_path={tmp_path / 'g.pt'}"])
    assert round(result.val_loss, 4) == final_loss(capsys.readouterr().out)
    idx = torch.tensor([result.encode("king")])
    assert result.decode(result.model.generate(idx, 20)[0].tolist()).startswith("king")
    assert result.model.config.n_embd == 32
    bigram_result = bigram.main(["bigram.py", f"--input={text_file}", "--max_iters=10", "--max_new_tokens=5"])
    assert bigram_result.decode(bigram_result.model.generate(torch.tensor([bigram_result.encode("k")]), 3)[0].tolist())


def test_compiling_does_not_change_the_batches_a_run_draws(text_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda model: model)  # the warm-up step runs, compiled or not
    runs = []
    for flag in ("--compile=false", "--compile=true"):
        args = ["gpt.py", f"--input={text_file}", *TINY, flag, "--dropout=0.3", f"--ckpt_path={tmp_path / flag}.pt"]
        _, out, _ = run_main(args, capsys)
        runs.append([line.split(" | ")[0] for line in out.splitlines() if line.startswith("step")])
    assert runs[0] == runs[1] and len(runs[0]) == 7


def test_the_compile_warm_up_compiles_the_graph_that_the_loop_then_runs(text_file, tmp_path, capsys, monkeypatch):
    """A warm-up batch of another layout than get_batch's made the first real step compile again (17 s on an
    H100). Dynamo's eager backend keeps its guards without generating code, so this takes a second."""
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: real_compile(model, backend="eager"))
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)  # a second compile raises
    torch._dynamo.reset()
    args = ["gpt.py", f"--input={text_file}", *TINY, "--compile=true", f"--ckpt_path={tmp_path / 'c.pt'}"]
    code, out, _ = run_main(args, capsys)
    torch._dynamo.reset()
    assert code == 0 and "compiled in" in out and "step 30: train loss" in out


@pytest.mark.parametrize("name", ["bigram.py", "gpt.py"])
def test_a_missing_text_whose_download_fails_stops_with_one_line_and_no_traceback(name, tmp_path):
    alone = tmp_path / name  # a copy of the script in a folder with no input.txt beside it, with no network
    source = open(os.path.join(HERE, name), encoding="utf-8").read()
    source, found = re.subn(r'^TINY_SHAKESPEARE_URL = ".*"$', 'TINY_SHAKESPEARE_URL = "http://127.0.0.1:9/input.txt"',
                            source, flags=re.M)
    assert found == 1
    alone.write_text(source, encoding="utf-8")
    run = subprocess.run([sys.executable, str(alone)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert "input.txt is missing" in run.stderr and "http://127.0.0.1:9/input.txt" in run.stderr
    assert "--input=PATH" in run.stderr and os.listdir(tmp_path) == [name]


@pytest.fixture
def served(monkeypatch):
    """A local HTTP server that answers every request with the bytes in served.body."""
    state = types.SimpleNamespace(body=b"")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for module in (gpt, bigram):
        monkeypatch.setattr(module, "TINY_SHAKESPEARE_URL", f"http://127.0.0.1:{server.server_port}/input.txt")
    yield state
    server.shutdown()


@pytest.mark.parametrize("body", [TEXT.encode()[:5000], b"<html>proxy login</html>", TEXT.encode()])
def test_a_download_that_is_not_tiny_shakespeare_is_refused_and_nothing_is_kept(body, served, tmp_path, capsys,
                                                                                 monkeypatch):
    served.body = body  # a truncated transfer, a proxy's page, another text of the right kind
    monkeypatch.setattr(gpt, "__file__", str(tmp_path / "gpt.py"))  # the default input.txt is looked for here
    code, _, err = run_main(["gpt.py", *TINY], capsys)
    assert code == 2 and err.count("\n") == 1 and "did not give tiny-shakespeare" in err
    assert os.listdir(tmp_path) == []


def test_a_download_that_is_tiny_shakespeare_is_kept_and_trained_on(served, tmp_path, monkeypatch, capsys):
    served.body = TEXT.encode()
    for module in (gpt, bigram):  # this test's stand-in for the canonical file
        monkeypatch.setattr(module, "TINY_SHAKESPEARE", hashlib.sha256(served.body).hexdigest())
    monkeypatch.setattr(gpt, "__file__", str(tmp_path / "gpt.py"))
    code, out, err = run_main(["gpt.py", *TINY, "--max_iters=2"], capsys)
    assert code == 0, err
    assert "downloading tiny-shakespeare" in out and (tmp_path / "input.txt").read_bytes() == served.body
    assert sorted(os.listdir(tmp_path)) == ["gpt.pt", "input.txt"]


@pytest.mark.parametrize("content, message", [(None, "not found"), (b"", "is empty"), ("folder", "is a folder"),
                                              ("/dev/null", "is not a regular file"),
                                              (b"ok \xff\xfe bad", "not UTF-8 text (byte 3 is 0xff)"),
                                              (b"ok \xe6\xbc", "not UTF-8 text (byte 3 is 0xe6)"),
                                              (b"too short", "too short")])
def test_a_bad_text_file_stops_with_exit_status_2_and_says_what_is_wrong(content, message, tmp_path, capsys):
    path = tmp_path / "text.txt"
    if content == "folder":
        path.mkdir()
    elif content == "/dev/null":
        path = content
    elif content is not None:
        path.write_bytes(content)
    code, _, err = run_main(["gpt.py", f"--input={path}", *TINY], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err


# ----------------------------------------------------------------------------- checkpoints and sampling
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short training run whose checkpoint the tests below sample from and resume."""
    folder = tmp_path_factory.mktemp("trained")
    text = folder / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    ckpt = folder / "gpt.pt"
    run = script("gpt.py", f"--input={text}", *TINY, "--max_iters=60", f"--ckpt_path={ckpt}")
    assert run.returncode == 0, run.stderr
    return text, ckpt, run.stdout


def test_training_saves_the_best_model_with_its_settings_vocabulary_and_step(trained):
    text, ckpt, stdout = trained
    checkpoint = torch.load(ckpt, weights_only=True)
    assert checkpoint["chars"] == sorted(set(TEXT)) and checkpoint["config"]["n_embd"] == 32
    assert checkpoint["hparams"]["max_iters"] == 60 and checkpoint["step"] == 60
    vals = [float(line.split("val loss ")[1].split(",")[0]) for line in stdout.splitlines()
            if line.startswith("step") and "val loss" in line]
    assert checkpoint["best_val_loss"] == pytest.approx(min(vals), abs=1e-4)
    last = checkpoint["last"]  # the state --resume goes on from: here the best one's
    assert last["step"] == 60 and set(last["rng"]) == {"cpu"} and last["model"].keys() == checkpoint["model"].keys()
    assert [set(state) for state in last["optimizer"]] == [{"state", "param_groups"}] * 2  # AdamW, Muon
    assert len(last["optimizer"][1]["state"]) == 4 * 2  # a momentum buffer per matrix of the 2 blocks


def test_sampling_streams_text_after_the_prompt_and_the_same_seed_repeats_it(trained):
    text, ckpt, _ = trained
    runs = [script("gpt.py", "--sample", "--prompt=king", f"--ckpt_path={ckpt}", "--max_new_tokens=80",
                   "--device=cpu", f"--seed={seed}") for seed in (1, 1, 2)]
    assert all(run.returncode == 0 and run.stderr == "" for run in runs)
    assert runs[0].stdout.startswith("king") and len(runs[0].stdout.rstrip("\n")) == 4 + 80
    assert runs[0].stdout == runs[1].stdout != runs[2].stdout
    assert "step" not in runs[0].stdout  # nothing trained


def test_sampling_writes_each_character_as_it_is_produced(trained, monkeypatch, capsys):
    text, ckpt, _ = trained
    flushes = []
    real_print = print
    monkeypatch.setattr("builtins.print", lambda *a, **k: (flushes.append(k.get("flush")), real_print(*a, **k)))
    gpt.main(["gpt.py", "--sample", f"--ckpt_path={ckpt}", "--max_new_tokens=25", "--device=cpu"])
    assert flushes.count(True) >= 25 and len(capsys.readouterr().out) == 1 + 25 + 1


@pytest.mark.parametrize("prompt", ["kingZ@", "é"])
def test_a_prompt_with_characters_outside_the_vocabulary_names_them(prompt, trained, capsys):
    _, ckpt, _ = trained
    code, _, err = run_main(["gpt.py", "--sample", f"--prompt={prompt}", f"--ckpt_path={ckpt}", "--device=cpu"], capsys)
    unknown = "".join(sorted(set(prompt) - set(TEXT)))
    assert code == 2 and err.count("\n") == 1 and repr(unknown) in err


def damaged(ckpt, damage, path):
    """A copy of a good checkpoint with one kind of damage."""
    if damage == "truncated":
        path.write_bytes(ckpt.read_bytes()[:2000])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    elif damage in ("no last", "no step", "no chars", "no config"):
        checkpoint = torch.load(ckpt, weights_only=True)
        del checkpoint[damage.split()[1]]
        torch.save(checkpoint, path)
    elif damage == "other shapes":
        checkpoint = torch.load(ckpt, weights_only=True)
        checkpoint["config"]["n_embd"] = 64  # the weights stay 32 wide
        torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("damage, message", [("missing", "no checkpoint at"), ("truncated", "or it was cut short"),
                                             ("garbage", "is not a checkpoint"), ("no last", "lacks last"),
                                             ("no step", "lacks step"), ("no chars", "lacks chars"),
                                             ("no config", "lacks config"),
                                             ("other shapes", "it describes (size mismatch for")])
@pytest.mark.parametrize("mode", ["--sample", "--resume"])
def test_a_missing_broken_or_incomplete_checkpoint_stops_with_one_line(damage, message, mode, trained, tmp_path, capsys):
    text, ckpt, _ = trained
    broken = damaged(ckpt, damage, tmp_path / "broken.pt")
    code, _, err = run_main(["gpt.py", mode, f"--input={text}", f"--ckpt_path={broken}", *TINY], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_a_file_that_is_not_a_checkpoint_is_named_and_never_to_be_deleted(capsys):
    readme = os.path.join(HERE, "README.md")
    before = open(readme, "rb").read()
    code, _, err = run_main(["gpt.py", "--sample", f"--ckpt_path={readme}"], capsys)
    assert code == 2 and err.count("\n") == 1 and f"{readme} is not a checkpoint that gpt.py wrote" in err
    assert "delete" not in err and open(readme, "rb").read() == before


def test_resume_continues_from_the_saved_step(trained, tmp_path, capsys):
    text, ckpt, _ = trained
    copy = tmp_path / "gpt.pt"
    copy.write_bytes(ckpt.read_bytes())
    code, out, err = run_main(["gpt.py", "--resume", f"--input={text}", *TINY, "--max_iters=80",
                               f"--ckpt_path={copy}"], capsys)
    assert code == 0, err
    assert "resuming" in out and "step 60" in out and "step 80: train loss" in out and "step 10:" not in out


def test_resume_keeps_the_checkpoints_shape_and_says_so(trained, tmp_path, capsys):
    text, ckpt, _ = trained
    copy = tmp_path / "gpt.pt"
    copy.write_bytes(ckpt.read_bytes())
    args = [*TINY, "--block_size=32", "--n_embd=64", "--max_iters=70"]
    code, out, err = run_main(["gpt.py", "--resume", f"--input={text}", *args, f"--ckpt_path={copy}"], capsys)
    assert code == 0, err
    assert "keeps the checkpoint's shape" in out and "not --block_size=32 --n_embd=64" in out
    assert "block 16" in out and "step 70: train loss" in out


def logged_losses(stdout, after=0):
    """The losses and learning rates a run printed after a step, without the clock's figures."""
    found = re.findall(r"^step (\d+): (train loss [\d.]+, val loss [\d.]+|loss [\d.]+ \| lr \S+)", stdout, re.M)
    return [(int(step), what) for step, what in found if int(step) > after]


def test_a_run_stopped_by_sigterm_and_resumed_with_the_same_command_ends_as_if_never_stopped(
        text_file, tmp_path, capsys, monkeypatch):
    args = ["gpt.py", f"--input={text_file}", *TINY, "--max_iters=80", "--dropout=0.1"]  # dropout draws too
    code, whole, err = run_main([*args, f"--ckpt_path={tmp_path / 'whole.pt'}"], capsys)
    assert code == 0, err
    real_get_batch, drawn = gpt.get_batch, []

    def get_batch(split, batch_size, generator=None):  # SIGTERM arrives while step 37 trains
        drawn.append(generator is None)
        if sum(drawn) == 38 and generator is None:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_get_batch(split, batch_size, generator)
    monkeypatch.setattr(gpt, "get_batch", get_batch)
    path = tmp_path / "stopped.pt"
    code, stopped, err = run_main([*args, f"--ckpt_path={path}"], capsys)
    assert code == 0 and "interrupted by SIGTERM" in stopped and "step 80" not in stopped, err
    assert torch.load(path, weights_only=True)["last"]["step"] == 38
    monkeypatch.setattr(gpt, "get_batch", real_get_batch)
    code, resumed, err = run_main([*args, "--resume", f"--ckpt_path={path}"], capsys)
    assert code == 0 and "resuming" in resumed and "changes nothing" in resumed, err
    assert logged_losses(resumed) == logged_losses(whole, after=38) and len(logged_losses(resumed)) == 10
    assert final_loss(resumed) == final_loss(whole)


def test_a_finished_run_extended_by_resume_ends_as_a_run_given_the_longer_budget_from_the_start(
        text_file, tmp_path, capsys):
    args = [f"--input={text_file}", *TINY, "--cooldown_frac=0.5"]
    code, longer, err = run_main(["gpt.py", *args, "--max_iters=120", f"--ckpt_path={tmp_path / 'long.pt'}"], capsys)
    assert code == 0, err
    path = tmp_path / "gpt.pt"
    code, short, err = run_main(["gpt.py", *args, "--max_iters=60", f"--ckpt_path={path}"], capsys)
    assert code == 0, err
    # the other settings and the text come from the checkpoint; the decay began at step 31, where 31/60 > 0.5
    code, extended, err = run_main(["gpt.py", "--resume", "--max_iters=120", "--compile=false", "--device=cpu",
                                    f"--ckpt_path={path}"], capsys)
    assert code == 0, err
    assert "the command line changes max_iters 60 -> 120" in extended and "from step 31, where it began" in extended
    assert logged_losses(extended) == logged_losses(longer, after=31)
    assert final_loss(extended) == final_loss(longer) < final_loss(short)


def test_resume_takes_the_runs_settings_from_the_checkpoint_and_names_what_the_command_line_changes(
        trained, tmp_path, capsys):
    text, ckpt, _ = trained
    copy = tmp_path / "gpt.pt"
    copy.write_bytes(ckpt.read_bytes())
    code, out, err = run_main(["gpt.py", "--resume", f"--ckpt_path={copy}", "--max_iters=62", "--device=cpu",
                               "--compile=false", "--learning_rate=1e-4", "--eval_interval=1"], capsys)
    assert code == 0, err
    assert "the command line changes max_iters 60 -> 62, learning_rate 0.0015 -> 0.0001, eval_interval 10 -> 1" in out
    saved = torch.load(copy, weights_only=True)["hparams"]
    assert (saved["batch_size"], saved["warmup_iters"], saved["eval_iters"], saved["input"]) == (8, 5, 2, str(text))
    assert (saved["learning_rate"], saved["max_iters"]) == (1e-4, 62) and "step 61: train loss" in out


def test_resuming_with_the_other_optimiser_setting_stops_with_one_line_naming_it(trained, tmp_path, capsys):
    text, ckpt, _ = trained
    code, _, err = run_main(["gpt.py", "--resume", f"--input={text}", *TINY, "--muon=false",
                             f"--ckpt_path={ckpt}"], capsys)
    assert code == 2 and err.count("\n") == 1 and "trained with --muon=True" in err


def test_a_checkpoint_of_an_earlier_layout_is_refused_with_one_line(trained, tmp_path, capsys):
    text, ckpt, _ = trained
    old = torch.load(ckpt, weights_only=True)  # an earlier gpt.py had a table of 8,191 bigram vectors
    old["model"]["bigram_embedding_table.weight"] = torch.zeros(8191, 32)
    old["config"]["bigram_rows"] = 8191
    torch.save(old, tmp_path / "old.pt")
    for mode in ("--sample", "--resume"):
        code, _, err = run_main(["gpt.py", mode, f"--input={text}", *TINY, f"--ckpt_path={tmp_path / 'old.pt'}"],
                                capsys)
        assert code == 2 and err.count("\n") == 1 and "does not fit" in err and "another version of gpt.py" in err


def test_a_worse_evaluation_never_overwrites_a_better_checkpoint(trained, tmp_path, capsys):
    text, ckpt, _ = trained
    copy = tmp_path / "gpt.pt"
    copy.write_bytes(ckpt.read_bytes())
    before = torch.load(copy, weights_only=True)
    # a learning rate far too high makes every later evaluation worse than the saved one
    code, out, err = run_main(["gpt.py", "--resume", f"--input={text}", *TINY, "--max_iters=70", "--learning_rate=3",
                               "--grad_clip=0", "--warmup_iters=0", f"--ckpt_path={copy}"], capsys)
    after = torch.load(copy, weights_only=True)
    assert code == 0, err
    assert after["step"] == before["step"] and after["best_val_loss"] == before["best_val_loss"]
    assert ", saved" not in out


def test_a_new_run_never_destroys_a_checkpoint_that_another_run_wrote(trained, tmp_path, capsys):
    text, ckpt, _ = trained
    path = tmp_path / "gpt.pt"
    path.write_bytes(ckpt.read_bytes())  # an earlier run's trained model
    code, out, err = run_main(["gpt.py", f"--input={text}", *TINY, "--max_iters=3", f"--ckpt_path={path}"], capsys)
    assert code == 0, err
    kept = tmp_path / "gpt.1.pt"
    assert f"{path} holds a checkpoint this run did not write: it is kept as {kept}" in out
    assert kept.read_bytes() == ckpt.read_bytes() and torch.load(path, weights_only=True)["step"] == 3
    run_main(["gpt.py", f"--input={text}", *TINY, "--max_iters=2", f"--ckpt_path={path}"], capsys)
    assert sorted(os.listdir(tmp_path)) == ["gpt.1.pt", "gpt.2.pt", "gpt.pt"]  # the third run keeps the second's


def test_a_run_that_saved_no_checkpoint_says_that_its_final_loss_is_of_the_last_steps_weights(
        text_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpt.Checkpoint, "save_if_best", lambda self, *args: False)  # as if every estimate were NaN
    path = tmp_path / "gpt.pt"
    code, out, err = run_main(["gpt.py", f"--input={text_file}", *TINY, "--max_iters=2", f"--ckpt_path={path}"], capsys)
    assert code == 0, err
    assert "best checkpoint: step 2 (the last step's weights: this run's checkpoint is not there)" in out
    assert not path.exists()


def test_a_checkpoint_folder_that_does_not_exist_is_made(text_file, tmp_path, capsys):
    path = tmp_path / "runs" / "latest" / "gpt.pt"
    code, _, err = run_main(["gpt.py", f"--input={text_file}", *TINY, "--max_iters=2", f"--ckpt_path={path}"], capsys)
    assert code == 0, err
    assert path.exists() and os.listdir(path.parent) == ["gpt.pt"]  # and no temporary file is left


def test_a_checkpoint_path_that_cannot_be_written_stops_before_training(text_file, tmp_path, capsys):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    for path, message in ((tmp_path, "not a folder"), (tmp_path / "blocker" / "gpt.pt", "cannot be written"),
                          ("/proc/gpt.pt", "cannot be written")):
        code, out, err = run_main(["gpt.py", f"--input={text_file}", *TINY, f"--ckpt_path={path}"], capsys)
        assert code == 2 and err.count("\n") == 1 and message in err and "step 0" not in out


def a_checkpoint(path):
    """A Checkpoint of a tiny model, as main() makes one, saving to path."""
    gpt.hp = gpt.Hyperparameters(muon=False)
    model = tiny_gpt(10)
    return gpt.Checkpoint(str(path), model, gpt.make_optimizers(model), list("abcdefghij"))


def test_two_runs_saving_to_different_paths_in_one_folder_never_share_a_temporary_file(tmp_path, monkeypatch):
    names = []
    real = tempfile.NamedTemporaryFile

    def recorded(*args, **kwargs):
        f = real(*args, **kwargs)
        names.append(f.name)
        return f
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", recorded)
    for name in ("a.pt", "b.pt"):
        assert a_checkpoint(tmp_path / name).save_if_best(1, 2.0, 0.0)
    assert len(set(names)) == 2 and all(os.path.dirname(name) == str(tmp_path) for name in names)
    assert sorted(os.listdir(tmp_path)) == ["a.pt", "b.pt"]
    assert all(os.stat(tmp_path / name).st_mode & 0o777 == 0o644 for name in ("a.pt", "b.pt"))


def test_saving_is_atomic_a_crash_mid_save_leaves_the_old_checkpoint_whole(tmp_path, monkeypatch):
    ckpt = a_checkpoint(tmp_path / "gpt.pt")
    ckpt.save_if_best(1, 2.0, 0.0)

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_if_best(2, 1.0, 0.0)
    assert torch.load(tmp_path / "gpt.pt", weights_only=True)["step"] == 1 and os.listdir(tmp_path) == ["gpt.pt"]


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "chars": [], "payload": print}, path)  # a pickled callable
    with pytest.raises(gpt.UsageError, match="is not a checkpoint that gpt.py wrote"):
        gpt.load_checkpoint(str(path))


def test_a_loss_that_becomes_nan_stops_and_keeps_the_best_checkpoint(text_file, tmp_path, capsys):
    ckpt = tmp_path / "gpt.pt"
    code, _, err = run_main(["gpt.py", f"--input={text_file}", *TINY, "--max_iters=60", "--learning_rate=1e30",
                             "--grad_clip=0", "--warmup_iters=0", f"--ckpt_path={ckpt}"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "the loss became nan" in err and "lower --learning_rate" in err
    assert torch.load(ckpt, weights_only=True)["step"] == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_at_a_step_boundary_with_the_final_loss_and_a_sample(sig, text_file, tmp_path):
    ckpt = tmp_path / "gpt.pt"
    args = [f"--input={text_file}", *TINY, "--max_iters=100000", "--eval_interval=50", f"--ckpt_path={ckpt}"]
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "gpt.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_line(proc, "step 20:")  # until it is training
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and err == ""
    assert f"interrupted by {sig.name}" in out and "final val loss" in out and ckpt.exists()


@pytest.mark.parametrize("device", [
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")),
    pytest.param("mps", marks=pytest.mark.skipif(not torch.backends.mps.is_available(), reason="no mps here"))])
def test_on_a_gpu_its_default_trains_compiled_saves_resumes_and_samples(device, text_file, tmp_path):
    """The CUDA column (the lecture's size, bf16 where the GPU has it, compiled) or mps's, for 20 steps."""
    ckpt = tmp_path / "gpt.pt"
    args = [f"--input={text_file}", f"--device={device}", f"--ckpt_path={ckpt}", "--max_time=0", "--eval_iters=5"]
    run = script("gpt.py", *args, "--max_iters=20", "--max_new_tokens=0", timeout=600)
    assert run.returncode == 0 and "step 20: train loss" in run.stdout and "final val loss" in run.stdout, run.stderr
    assert "compiled in" in run.stdout or device == "mps"  # mps may train eager, and says so
    if device == "cuda":
        assert "6 layers, 6 heads, 384 wide" in run.stdout and "64 x 256" in run.stdout
        assert f"bf16 {torch.cuda.is_bf16_supported(including_emulation=False)}" in run.stdout
    resumed = script("gpt.py", *args, "--resume", "--max_iters=30", "--max_new_tokens=0", timeout=600)
    assert resumed.returncode == 0 and "resuming" in resumed.stdout and "step 30: train loss" in resumed.stdout
    sample = script("gpt.py", "--sample", f"--ckpt_path={ckpt}", f"--device={device}", "--prompt=king",
                    "--max_new_tokens=50", timeout=300)
    assert sample.returncode == 0 and sample.stdout.startswith("king") and len(sample.stdout.rstrip("\n")) == 54


# ----------------------------------------------------------------------------- any text, several processes
def test_a_non_ascii_text_trains_and_its_sample_is_made_of_its_own_characters(tmp_path):
    text = "".join(f"나는 {w}를 좋아해요 {e}\n" for w in ("사과", "바다", "음악", "고양이") for e in "🙂🌊🎵🐱") * 20
    path, ckpt = tmp_path / "korean.txt", tmp_path / "k.pt"
    path.write_text(text, encoding="utf-8")
    run = script("gpt.py", f"--input={path}", *TINY, f"--ckpt_path={ckpt}")
    assert run.returncode == 0, run.stderr
    assert f"vocabulary of {len(set(text))}" in run.stdout
    sample = run.stdout.split("a sample from the best checkpoint:\n", 1)[1]
    assert len(sample) > 60 and set(sample) <= set(text)
    written = script("gpt.py", "--sample", "--prompt=나는", f"--ckpt_path={ckpt}", "--device=cpu")
    assert written.stdout.startswith("나는") and set(written.stdout) <= set(text)


def test_a_text_of_thousands_of_characters_makes_a_model_and_a_checkpoint_that_grow_linearly(tmp_path, capsys):
    rng = random.Random(0)
    alphabet = [chr(0x4E00 + i) for i in range(3000)]  # Chinese characters, as a text in Chinese has
    text = "".join(rng.choice(alphabet) + "。\n" * (rng.random() < 0.1) for _ in range(30000))
    path, ckpt = tmp_path / "zh.txt", tmp_path / "zh.pt"
    path.write_text(text, encoding="utf-8")
    code, out, err = run_main(["gpt.py", f"--input={path}", *TINY, "--max_iters=2", f"--ckpt_path={ckpt}"], capsys)
    assert code == 0, err
    params = sum(p.numel() for p in gpt.GPT(gpt.GPTConfig(len(set(text)), 16, 2, 2, 32)).parameters())
    assert f"{params / 1e6:.2f}M parameters" in out and params < 1e6  # a V x V table would hold 9M numbers
    assert ckpt.stat().st_size < 16 * params  # the weights and AdamW's two moments, 4 bytes each, and little else
    bigram_run = bigram.main(["bigram.py", f"--input={path}", "--max_iters=2", "--eval_iters=1", "--max_new_tokens=3"])
    assert bigram_run.model.token_embedding_table.weight.shape == (len(set(text)),) * 2


def test_bigram_refuses_a_table_that_would_not_fit_in_memory(tmp_path, capsys):
    with pytest.raises(bigram.UsageError, match=r"a 1,000,000 x 1,000,000 bigram table needs 16000\.0 GB"):
        bigram.check_memory(1_000_000, "cpu")
    bigram.check_memory(65, "cpu")  # tiny-shakespeare's 4,225 scores fit anywhere


def test_the_final_evaluation_is_capped_on_a_large_text_and_says_so(text_file, tmp_path, capsys):
    _, out, _ = run_main(["gpt.py", f"--input={text_file}", *TINY, "--max_iters=5", "--eval_chars=100",
                          f"--ckpt_path={tmp_path / 'g.pt'}"], capsys)
    assert "on the validation split, its first 100 characters" in out


def torchrun(*args, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return script("gpt.py", *args, launcher=TORCHRUN, env=env, timeout=timeout)


def torchrun_saving_each_ranks_weights(folder, *args):
    """torchrun on a script that runs gpt.main and then saves each process's weights as folder/rankN.pt."""
    runner = folder / "run_gpt.py"
    runner.write_text(f"import sys, torch; sys.path.insert(0, {HERE!r}); import gpt\n"
                      "train = gpt.train\n"
                      "def saving(model, *args):\n"
                      "    step = train(model, *args)\n"
                      f"    torch.save(model.state_dict(), f'{folder}/rank{{gpt.RANK}}.pt')\n"
                      "    return step\n"
                      "gpt.train = saving\n"
                      "gpt.main(sys.argv[1:])\n", encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*TORCHRUN, str(runner), *args], capture_output=True, text=True, timeout=120, env=env)


def test_torchrun_trains_on_two_processes_that_end_with_identical_weights(text_file, tmp_path):
    ckpt = tmp_path / "ddp.pt"
    run = torchrun_saving_each_ranks_weights(tmp_path, f"--input={text_file}", *TINY, "--max_iters=40",
                                             f"--ckpt_path={ckpt}")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert sum(line.startswith("step 0: train loss") for line in lines) == 1  # rank 0 alone prints
    assert "split over 2 processes (4 each)" in run.stdout
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    vals = [float(line.split("val loss ")[1].split(",")[0]) for line in lines if line.startswith("step") and "val loss" in line]
    assert vals[-1] < vals[0] - 0.5
    sampled = torchrun("--sample", f"--ckpt_path={ckpt}", "--device=cpu", "--max_new_tokens=20")
    assert sampled.returncode == 0 and len(sampled.stdout) == 1 + 20 + 1  # written once, not once per process


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_under_torchrun_ctrl_c_or_sigterm_stops_every_process_together_with_the_final_loss(sig, text_file, tmp_path):
    ckpt = tmp_path / "gpt.pt"
    args = [f"--input={text_file}", *TINY, "--max_iters=100000", "--eval_interval=50", f"--ckpt_path={ckpt}"]
    proc = subprocess.Popen([*TORCHRUN, os.path.join(HERE, "gpt.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    wait_for_line(proc, "step 20:")  # until it is training
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C in a terminal reaches torchrun and every process it started
    else:
        proc.send_signal(sig)  # what a scheduler or `timeout` sends to the launcher
    out, err = proc.communicate(timeout=60)
    assert f"interrupted by {sig.name}" in out and "final val loss" in out and ckpt.exists()
    assert out.count("final val loss") == 1 and "KeyboardInterrupt" not in err


def test_under_torchrun_a_signal_that_only_another_process_has_seen_yet_is_named_by_rank_0(monkeypatch, capsys):
    """Ctrl-C reaches every process, but not at the same instant: rank 0 may learn of it from the others first
    (the agreement step takes the largest signal number of all processes)."""
    another_got_sigint = lambda t, op: t.__setitem__(1, max(t[1].item(), float(signal.SIGINT)))
    monkeypatch.setattr(gpt, "WORLD_SIZE", 2)
    monkeypatch.setattr(torch.distributed, "all_reduce", another_got_sigint)
    gpt.hp = gpt.Hyperparameters(max_time=0)
    progress = gpt.Progress(0.0, types.SimpleNamespace(model=tiny_gpt(10)))
    assert progress.poll(5)[1]  # this process has seen no signal
    assert "interrupted by SIGINT: finishing with the best checkpoint" in capsys.readouterr().out


def test_under_torchrun_an_error_in_the_loop_frees_the_loop_before_the_processes_leave(monkeypatch):
    """The error's traceback holds the loop's frame and its DDP wrapper; freed only at exit, after
    destroy_process_group, gloo's destructor waited for the interpreter's lock forever (a CI hang)."""
    class Wrapper:  # stands in for the DDP module that the loop's frame holds
        pass
    wrappers, alive_at_destroy = [], []
    monkeypatch.setattr(gpt, "WORLD_SIZE", 2)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend: None)
    monkeypatch.setattr(torch.distributed, "destroy_process_group",
                        lambda: alive_at_destroy.append(wrappers[0]() is not None))

    def loop():
        train_model = Wrapper()
        wrappers.append(weakref.ref(train_model))
        raise gpt.UsageError("the loss became nan")
    with pytest.raises(gpt.UsageError):
        with gpt.distributed("cpu"):
            loop()
    assert alive_at_destroy == [False]


def test_pasted_into_a_notebook_cell_it_runs_without_file_and_ignores_the_kernel_arguments(tmp_path):
    """A cell has no __file__, runs under the main guard, and has the kernel's argv; the text is looked for
    in the working folder, and overrides go through main([...]) as the docstring says."""
    (tmp_path / "input.txt").write_text(TEXT, encoding="utf-8")
    source = open(os.path.join(HERE, "gpt.py"), encoding="utf-8").read()
    cell = source.replace("    result = main()", f"    result = main(['gpt.py', *{TINY!r}])")
    assert cell != source
    code = ("import sys, types; sys.argv = ['/x/ipykernel_launcher.py', '-f', '/run/kernel-1.json']\n"
            "sys.modules['ipykernel'] = types.ModuleType('ipykernel')\n"
            f"exec(compile({cell!r}, '<cell>', 'exec'), {{'__name__': '__main__'}})")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert f"text: {tmp_path / 'input.txt'}" in run.stdout and "final val loss" in run.stdout
    assert (tmp_path / "gpt.pt").exists()


def test_a_real_jupyter_kernel_runs_the_pasted_file_and_run_with_arguments_and_samples_from_the_result(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    (tmp_path / "input.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "other.txt").write_text(TEXT.upper(), encoding="utf-8")
    source = open(os.path.join(HERE, "gpt.py"), encoding="utf-8").read()
    cell = source.replace("    result = main()", f"    result = main(['gpt.py', *{TINY!r}])")
    play = "print(repr(result.decode(result.model.generate(torch.tensor([result.encode('KING')]), 40)[0].tolist())))"
    run = " ".join(["%run", os.path.join(HERE, "gpt.py"), "--input=other.txt", "--ckpt_path=other.pt", *TINY])
    runs = [nbformat.v4.new_code_cell(code) for code in (
        cell, "main(['gpt.py', '--help'])", run, play,
        f"%run {os.path.join(HERE, 'bigram.py')} --input=other.txt --max_iters=5 --max_new_tokens=5")]
    notebook = nbformat.v4.new_notebook(cells=runs)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = ["".join(output.get("text", "") for output in c.outputs) for c in notebook.cells]
    assert "final val loss" in printed[0] and "step 30: train loss" in printed[0]  # the pasted cell ran
    assert unwrapped("transformer blocks (default: 4, cuda: 6)") in unwrapped(printed[1])  # --help only prints
    assert "other.txt" in printed[2] and "final val loss" in printed[2]  # %run took its arguments
    written = eval(printed[3])  # the next cell plays with what %run left
    assert written.startswith("KING") and len(written) == 44 and set(written) <= set(TEXT.upper())
    sample = printed[4].split("final val loss", 1)[1].split("\n", 1)[1]  # bigram.py's, from other.txt's letters
    assert "step 5: train loss" in printed[4] and sample.strip() and set(sample) <= set(TEXT.upper())


# ----------------------------------------------------------------------------- property: every setting
def random_settings(rng):
    """A random combination of overrides, extreme values included."""
    choices = {"n_layer": [0, 1, 2], "n_head": [1, 2, 3], "n_embd": [0, 2, 6, 8, 12], "block_size": [0, 1, 2, 8],
               "batch_size": [0, 1, 3, 8], "dropout": [0.0, 0.5, 0.99, 1.0], "learning_rate": [0, 1e-3, 1e30],
               "top_k": [0, 1, 1000], "temperature": [0, 0.5, 10], "max_time": [0, 0.001, 0.5],
               "max_iters": [0, 1, 5], "warmup_iters": [0, 3], "eval_iters": [1, 2], "eval_interval": [1, 3],
               "log_interval": [1, 2], "grad_clip": [0, 1.0], "weight_decay": [0, 0.1], "max_new_tokens": [0, 5],
               "eval_chars": [1, 50, 1000], "seed": [0, 7], "muon": [True, False, 0, 1]}
    return [f"--{name}={rng.choice(values)}" for name, values in choices.items() if rng.random() < 0.6]


def test_any_combination_of_settings_finishes_or_stops_with_one_line(text_file, tmp_path, capsys):
    rng = random.Random(2026)
    outcomes = []
    for case in range(40):
        args = random_settings(rng)
        argv = ["gpt.py", f"--input={text_file}", "--device=cpu", "--compile=false", "--max_iters=5",
                "--max_new_tokens=5", "--eval_iters=1", f"--ckpt_path={tmp_path / f'c{case}.pt'}", *args]
        code, out, err = run_main(argv, capsys)  # any other exception, a traceback, fails the test here
        assert (code == 0 and err == "") or (code == 2 and err.startswith("error: ") and err.count("\n") == 1), args
        outcomes.append(code)
    assert 5 <= outcomes.count(0) and 5 <= outcomes.count(2)  # the draw covers both outcomes


@pytest.mark.parametrize("args, code", [(["--batch_size=3"], 2), (["--learning_rate=1e30", "--log_interval=1"], 2),
                                        (["--n_layer=1", "--dropout=0.99", "--max_time=0.001"], 0),
                                        (["--input=/nonexistent/missing.txt"], 2)])
def test_under_torchrun_a_setting_either_finishes_or_stops_every_process_with_one_line(args, code, text_file, tmp_path):
    """A bad input or setting stops every process (none hangs), and the one line is printed once."""
    start = time.time()
    run = torchrun(f"--input={text_file}", *TINY, "--max_iters=3", f"--ckpt_path={tmp_path / 'g.pt'}", *args)
    assert (run.returncode == 0) == (code == 0), run.stderr
    assert run.stderr.count("error: ") == (code == 2) and "Traceback" not in run.stderr.split("error: ")[0]
    assert time.time() - start < 60


# ----------------------------------------------------------------------------- the scripts as a reader sees them
def functions(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    return {node.name: node.end_lineno - node.lineno + 1 for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_the_scripts_keep_their_line_budgets():
    lines = {name: open(os.path.join(HERE, name), encoding="utf-8").read().splitlines()
             for name in ("gpt.py", "bigram.py")}
    reader = next(i for i, line in enumerate(lines["gpt.py"]) if line.startswith("# ---- plumbing"))
    assert len(lines["gpt.py"]) <= 922 and reader <= 400 and len(lines["bigram.py"]) <= 230
    for name in lines:
        assert max(functions(os.path.join(HERE, name)).values()) <= 60, name
        assert max(map(len, lines[name])) <= 120, name
    assert functions(os.path.join(HERE, "gpt.py"))["train"] <= 45


# ----------------------------------------------------------------------------- the README
def readme():
    return open(os.path.join(HERE, "README.md"), encoding="utf-8").read()


def test_the_readme_names_only_settings_that_exist_and_files_that_are_here():
    settings = {f.name for module in (gpt, bigram) for f in module.fields(module.Hyperparameters)}
    settings |= {f.name for f in gpt.fields(gpt.Settings)} | {"help", "name"}
    other_tools = {"standalone", "nproc_per_node", "nnodes", "node_rank", "master_addr", "master_port",  # torchrun
                   "index"}  # pip's --index-url
    named = set(re.findall(r"(?<![\w-])--(\w+)", readme()))
    assert named - settings - other_tools == set() and {"max_time", "max_iters", "sample", "resume"} <= named
    for name in set(re.findall(r"(?<![/\w])(\w+\.(?:py|sh))\b", readme())) - {"prepare.py", "train.py"}:  # nanoGPT's
        assert os.path.exists(os.path.join(HERE, name)), name


def test_the_readmes_first_screen_has_the_two_commands_and_its_tables_match_the_code():
    lines = readme().splitlines()
    assert len(lines) <= 220
    first = "\n".join(lines[:40])
    assert "&& python gpt.py" in first and "&& python -m pytest -q" in first
    cpu = gpt.Hyperparameters()
    cuda = {f.name: f.metadata["cuda"] for f in gpt.fields(gpt.Hyperparameters) if "cuda" in f.metadata}
    row = next(line for line in lines if line.startswith("| `n_layer`, `n_head`, `n_embd`, `dropout`"))
    assert f"| {cpu.n_layer}, {cpu.n_head}, {cpu.n_embd}, {cpu.dropout:g}, {cpu.weight_decay:.1f} |" in row
    assert f"| {cuda['n_layer']}, {cuda['n_head']}, {cuda['n_embd']}, {cuda['dropout']:g}, {cuda['weight_decay']:g} " in row
    count = lambda c: sum(p.numel() for p in gpt.GPT(gpt.GPTConfig(65, c.block_size, c.n_layer, c.n_head, c.n_embd))
                          .parameters())
    row = next(line for line in lines if line.startswith("| parameters on tiny-shakespeare"))
    assert f"| {count(cpu) / 1e6:.2f}M | {count(gpt.replace(cpu, **cuda)) / 1e6:.2f}M |" in row


# ----------------------------------------------------------------------------- the real loop learns
def markov_chain_of_order_2(K=8, n=100_000, seed=0):
    """A text drawn from a known random process: each character follows from the two before it, mostly as one
    of two successors of that pair. Returns the text and its exact entropies per character in nats, given the
    character before it (H1, the least a bigram can reach) and given the two before it (H2, the entropy rate)."""
    chars = "abcdefgh"[:K]
    P = torch.zeros(K, K, K, dtype=torch.float64)  # P[a, b, c]: the chance that c follows a b
    for a in range(K):
        for b in range(K):
            likely = 0.55 + 0.4 * ((a * K + b) % 5) / 4  # 0.55 to 0.95: each pair its own certainty
            P[a, b, (3 * a + 5 * b) % K] += likely
            P[a, b, (a + b + 1) % K] += (1 - likely) / 2
            P[a, b, :] += (1 - likely) / 2 / K
    pairs = torch.full((K, K), 1 / K**2, dtype=torch.float64)  # the pairs' stationary distribution
    for _ in range(2000):
        pairs = torch.einsum("ab,abc->bc", pairs, P)
    entropy = lambda p: -(p * p.clamp_min(1e-300).log()).sum(-1)
    H2 = (pairs * entropy(P)).sum().item()
    given_b = torch.einsum("ab,abc->bc", pairs, P) / pairs.sum(0)[:, None]  # P(c | b)
    H1 = (pairs.sum(0) * entropy(given_b)).sum().item()
    rng = random.Random(seed)
    ids = [0, 1]
    for _ in range(n - 2):
        ids.append(rng.choices(range(K), weights=P[ids[-2], ids[-1]].tolist())[0])
    return "".join(chars[i] for i in ids), H1, H2


def test_main_itself_learns_a_known_process_to_its_entropy_rate_and_beats_what_a_bigram_can(tmp_path, capsys):
    text, H1, H2 = markov_chain_of_order_2()
    path = tmp_path / "markov.txt"
    path.write_text(text, encoding="utf-8")
    T = 32
    best = (H1 + (T - 1) * H2) / T  # the final loss scores whole windows: the first target has one character before it
    code, out, err = run_main(["gpt.py", f"--input={path}", "--n_layer=2", "--n_head=2", "--n_embd=32",
                               f"--block_size={T}", "--batch_size=16", "--max_iters=400", "--eval_interval=100",
                               "--eval_iters=4", "--warmup_iters=20", "--max_time=0", "--compile=false",
                               "--device=cpu", "--max_new_tokens=0", f"--ckpt_path={tmp_path / 'gpt.pt'}"], capsys)
    assert code == 0, err
    loss = final_loss(out)  # Muon, the schedule, clipping, the checkpoint: main() as `python gpt.py` runs it
    assert H2 < H1 - 1.0  # the process is far from what a bigram can model
    assert abs(loss - best) < 0.03  # 2.5 standard errors of a mean of 10,000 characters' losses (each varies by 1.2)
