#!/usr/bin/env bash
# PSFHS, CPU profile: the rtseg and LightSeg students trained on one split (contiguous id blocks),
# int8 post-training quantization calibrated on TRAIN, test Dice / HD95 of the int8 models, and
# the latency table of both, side by side.
#   bash experiments/psfhs_cpu.sh [RUN_ROOT]      (default runs/psfhs_cpu; ~40 min on 2 cores)
# The CPU budget runs the LightSeg student at half width for 8 epochs (WIDTH=1.0 EPOCHS_LS=10 is
# the paper's 1.34 M-parameter student: about 4x the training time here).
set -euo pipefail
ROOT=${1:-runs/psfhs_cpu}
DATA=${PSFHS:-../shared/datasets/psfhs}
LS=${LIGHTSEG:-.venv/bin/lightseg}
CFG=(--config experiments/psfhs_cpu.yaml "run_root=$ROOT" "data.path=$DATA" train.verbose=2)
t0=$(date +%s)
$LS train "${CFG[@]}" name=rtseg model.name=rtseg "model.options={}"
$LS train "${CFG[@]}" name=lightseg_student model.name=lightseg_student "model.options={width: ${WIDTH:-0.5}}" \
    "data.split_file=$ROOT/rtseg/split.json" train.epochs=${EPOCHS_LS:-8}
for run in rtseg lightseg_student; do
    $LS evaluate "$ROOT/$run" --data "$DATA" --format psfhs --out "$ROOT/$run" > /dev/null
    $LS export "$ROOT/$run" --quant int8 --out "$ROOT/$run/model_int8.tflite"
    $LS evaluate --tflite "$ROOT/$run/model_int8.tflite" --data "$DATA" --format psfhs \
        --split-file "$ROOT/$run/split.json" --out "$ROOT/$run"
done
$LS benchmark "$ROOT/rtseg" "$ROOT/lightseg_student" --size 128 --runs 50 --out "$ROOT/bench" | tee "$ROOT/benchmark.md"
echo "wall time $(( $(date +%s) - t0 )) s"
