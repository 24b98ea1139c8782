#!/usr/bin/env bash
# nanoGPT's CPU recipe from its README, then gpt.py for the same wall time less 8 s (its start, final loss and
# sample), one after the other on this machine, and the two losses.
#   bash side_by_side.sh PATH/TO/nanoGPT [more gpt.py settings]
# PATH/TO/nanoGPT: a clone of https://github.com/karpathy/nanoGPT (the README's figures: commit 3adf61e).
# nanoGPT runs in a temporary copy, on the input.txt beside gpt.py, written in nanoGPT's format (uint16 ids).
set -euo pipefail
usage="usage: bash side_by_side.sh PATH/TO/nanoGPT [more gpt.py settings]"
[ $# -ge 1 ] && [ -f "$1/train.py" ] || { echo "$usage (a folder with nanoGPT's train.py)" >&2; exit 2; }
NANOGPT=$(cd "$1" && pwd); shift
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
python -c "import sys; sys.path.insert(0, sys.argv[1]); import gpt; gpt.find_text(sys.argv[2], True)" \
  "$HERE" "$HERE/input.txt"  # downloads tiny-shakespeare if it is missing
cp -r "$NANOGPT/." "$WORK/"
mkdir -p "$WORK/data/shakespeare_char"
python - "$HERE/input.txt" "$WORK/data/shakespeare_char" <<'PY'
import pickle, sys
import numpy as np
text, folder = open(sys.argv[1], encoding="utf-8").read(), sys.argv[2]
chars = sorted(set(text))  # what nanoGPT's data/shakespeare_char/prepare.py writes, without its download
stoi = {c: i for i, c in enumerate(chars)}
ids = np.array([stoi[c] for c in text], dtype=np.uint16)
n = int(0.9 * len(ids))
ids[:n].tofile(f"{folder}/train.bin")
ids[n:].tofile(f"{folder}/val.bin")
with open(f"{folder}/meta.pkl", "wb") as f:
    pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)
PY
start=$(date +%s.%N)
(cd "$WORK" && python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 \
  --log_interval=100 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 \
  --lr_decay_iters=2000 --dropout=0.0 --out_dir="$WORK/out" > "$WORK/nanogpt.log" 2>&1) \
  || { tail -5 "$WORK/nanogpt.log"; exit 1; }
nanogpt_wall=$(python -c "import time; print(round(time.time() - $start, 1))")
nanogpt_loss=$(grep -oE 'step 2000: train loss [0-9.]+, val loss [0-9.]+' "$WORK/nanogpt.log" | awk '{print $NF}')
budget=$(python -c "print(round($nanogpt_wall - 8, 1))")
start=$(date +%s.%N)
python "$HERE/gpt.py" --input="$HERE/input.txt" --max_time="$budget" --ckpt_path="$WORK/gpt.pt" "$@" \
  > "$WORK/gpt.log" 2>&1 || { tail -5 "$WORK/gpt.log"; exit 1; }
gpt_wall=$(python -c "import time; print(round(time.time() - $start, 1))")
gpt_loss=$(grep -oE 'final val loss [0-9.]+' "$WORK/gpt.log" | awk '{print $4}')
echo "nanoGPT's CPU recipe: val $nanogpt_loss (its estimate, 20 batches) in $nanogpt_wall s"
echo "gpt.py --max_time=$budget $*: final val $gpt_loss (the whole split) in $gpt_wall s"
