#!/usr/bin/env bash
# HC18, CPU profile: one small model on a subject-grouped split of ../shared/datasets/hc18 that
# covers every head size (stratified by reference HC); by default the U-Net of base 12, depth 4
# (1.1 M parameters) at a 256 px letterbox for 24 epochs (about 30 min on 2 cores: issue 19's
# bar met, docs/BENCHMARKS.md). Then test Dice (raw and with the ellipse post-processing: HC18's
# annotations are ellipses) and the head-circumference error in mm with its sign, by quartile of
# the reference HC, for the Keras model and its int8 export, with the confidence flag calibrated
# on VAL (flagged vs unflagged errors).
# Usage: bash experiments/hc18_cpu.sh [RUN_ROOT]   (default runs/hc18)
# Environment: SIZE (letterbox side, default 256), EPOCHS (default 24), NAME (default unet12_256),
#   MODEL (default unet), OPTIONS (its model.options, default '{base_filters: 12, depth: 4}'; the
#   earlier profile was MODEL=rtseg OPTIONS='{}' SIZE=128 EPOCHS=10), LOSS (loss.terms, default
#   '{dice: 1.0, ce: 1.0}', what every run of this script used; LightSeg's DLCE: '{dlce: 1.0}'),
#   EXTRA (further config overrides, e.g. EXTRA="data.augment.vflip=0.5 train.seed=1"), TTA (mirroring
#   test-time augmentation calibrated, exported into the int8 graph and scored: none (default),
#   hflip, or flips for a model trained with data.augment.vflip).
set -euo pipefail
ROOT=${1:-runs/hc18}
DATA=${HC18:-../shared/datasets/hc18}
LS=${LS:-.venv/bin/lightseg}
start=$(date +%s)
NAME=${NAME:-unet12_256}
$LS train name=$NAME run_root=$ROOT data.path=$DATA data.format=hc18 model.name=${MODEL:-unet} "model.options=${OPTIONS:-{base_filters: 12, depth: 4\}}" \
    "loss.terms=${LOSS:-{dice: 1.0, ce: 1.0\}}" data.image_size=${SIZE:-256} data.batch_size=8 train.epochs=${EPOCHS:-24} train.learning_rate=0.003 train.verbose=2 ${EXTRA:-}
RUN=$ROOT/$NAME
echo "training wall time: $(( $(date +%s) - start )) s"
TTA=${TTA:-none}
$LS evaluate $RUN --data $DATA --format hc18 --biometry --postprocess --tta $TTA
# The "low confidence: do not use" threshold, chosen on VAL; export copies it into the card.
$LS calibrate $RUN --tta $TTA
INT8=$RUN/model_int8$([ "$TTA" = none ] || echo "_$TTA").tflite
$LS export $RUN --quant int8 --tta $TTA --out $INT8
$LS evaluate --tflite $INT8 --split-file $RUN/split.json --data $DATA --format hc18 --biometry \
    --postprocess --out $RUN
echo "total wall time: $(( $(date +%s) - start )) s"
