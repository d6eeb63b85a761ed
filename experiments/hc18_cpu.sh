#!/usr/bin/env bash
# HC18, CPU profile: the rtseg student on a subject-grouped split of ../shared/datasets/hc18 that
# covers every head size (stratified by reference HC), 128 px letterbox, 10 epochs; then test Dice
# (raw and with the ellipse post-processing: HC18's annotations are ellipses), and the
# head-circumference error in mm with its sign, by quartile of the reference HC, for the Keras
# model and its int8 export, with the confidence flag calibrated on VAL (flagged vs unflagged errors).
# Usage: bash experiments/hc18_cpu.sh [RUN_ROOT]   (default runs/hc18)
# Environment: SIZE (letterbox side, default 128), EPOCHS (default 10), NAME (default rtseg_cpu),
#   MODEL (default rtseg), OPTIONS (its model.options, default {}, e.g. '{base_filters: 12, depth: 4}').
set -euo pipefail
ROOT=${1:-runs/hc18}
DATA=${HC18:-../shared/datasets/hc18}
LS=${LS:-.venv/bin/lightseg}
start=$(date +%s)
NAME=${NAME:-rtseg_cpu}
$LS train name=$NAME run_root=$ROOT data.path=$DATA data.format=hc18 model.name=${MODEL:-rtseg} "model.options=${OPTIONS:-{\}}" \
    data.image_size=${SIZE:-128} data.batch_size=8 train.epochs=${EPOCHS:-10} train.learning_rate=0.003 train.verbose=2
RUN=$ROOT/$NAME
echo "training wall time: $(( $(date +%s) - start )) s"
$LS evaluate $RUN --data $DATA --format hc18 --biometry --postprocess
# The "low confidence: do not use" threshold, chosen on VAL; export copies it into the card.
$LS calibrate $RUN
$LS export $RUN --quant int8 --out $RUN/model_int8.tflite
$LS evaluate --tflite $RUN/model_int8.tflite --split-file $RUN/split.json --data $DATA --format hc18 --biometry \
    --postprocess --out $RUN
echo "total wall time: $(( $(date +%s) - start )) s"
