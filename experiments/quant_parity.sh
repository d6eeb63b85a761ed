#!/usr/bin/env bash
# Float Keras vs QAT int8 vs PTQ int8 mean foreground Dice of each student on the same
# phantom test split (issue 7), then `lightseg benchmark` on the trained runs: speed and
# accuracy in one table. CPU profile: 160 phantom images, 20 epochs, SIZE px (default 128).
# Usage: bash experiments/quant_parity.sh [RUN_ROOT] [SIZE]   (defaults runs/parity 128)
set -euo pipefail
ROOT=${1:-runs/parity}
SIZE=${2:-128}
LS=.venv/bin/lightseg
for MODEL in lightseg_student rtseg; do
  RUN="$ROOT/$MODEL"
  $LS train name=$MODEL run_root=$ROOT model.name=$MODEL "model.options={}" data.image_size=$SIZE \
      data.phantom_n=160 train.epochs=20 train.learning_rate=0.003 train.verbose=2
  $LS evaluate "$RUN" --data "$RUN/phantom" --json > "$RUN/float.json"
  $LS quantize "$RUN" --mode ptq-int8
  $LS evaluate --tflite "$RUN/model_ptq_int8.tflite" --data "$RUN/phantom" --split-file "$RUN/split.json" --json > "$RUN/ptq_int8.json"
  $LS quantize "$RUN" --mode qat --epochs 2
  $LS evaluate --tflite "$RUN/model_qat.tflite" --data "$RUN/phantom" --split-file "$RUN/split.json" --json > "$RUN/qat_int8.json"
done
.venv/bin/python - "$ROOT" <<'PY'
import json, sys
root = sys.argv[1]
print(f"{'student':<18}{'float Keras':>12}{'QAT int8':>10}{'PTQ int8':>10}   (test mean foreground Dice)")
for m in ("lightseg_student", "rtseg"):
    d = {k: json.load(open(f"{root}/{m}/{k}.json"))["mean_fg_dice"] for k in ("float", "qat_int8", "ptq_int8")}
    print(f"{m:<18}{d['float']:12.4f}{d['qat_int8']:10.4f}{d['ptq_int8']:10.4f}")
PY
# Latency of the trained runs at their input size, with their test Dice beside it.
$LS benchmark "$ROOT/lightseg_student" "$ROOT/rtseg" --runs 50 --out "$ROOT/bench"
