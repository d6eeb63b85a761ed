#!/usr/bin/env bash
# HC18: two 256-px U-Nets, each with its mirroring TTA, voted and distilled into one U-Net that starts
# from the better of them (a short fine-tune on the vote's soft labels), then scored as every HC18
# model is: int8, Dice raw and with the ellipse, HC error by quartile, the confidence flag.
# Usage: bash experiments/hc18_vote_distill.sh T1 TTA1 T2 TTA2 OUT   (T1: the student's start;
#   TTA: none|hflip|flips per teacher; OUT: cache and student folder)
# Environment: EPOCHS (default 8), LR (default 0.001), SOFT (soft loss, default kl), ALPHA (0.5),
#   STUDENT_TTA (the student's own TTA in its export, default TTA1).
set -euo pipefail
T1=$1; TTA1=$2; T2=$3; TTA2=$4; OUT=$5
DATA=${HC18:-../shared/datasets/hc18}
LS=${LS:-.venv/bin/lightseg}
C=$OUT/cache
start=$(date +%s)
$LS teachers predict $T1 --tta $TTA1 --out $C --size 256 --splits train,val,test
$LS teachers predict $T2 --tta $TTA2 --out $C --size 256 --splits train,val,test
echo "cache: $(( $(date +%s) - start )) s"
# The vote's weights as the ensemble stage chooses them (equal, tuned, or the better teacher alone,
# by a 3-fold cross-check on VAL); each teacher alone and the votes on TEST go into its table.
$LS ensemble tune --cache $C --trials 30 --split val --report-split test
echo "ensemble: $(( $(date +%s) - start )) s"
$LS distill --config $T1/config.yaml name=vote_student run_root=$OUT data.split_file=$T1/split.json \
    distill.cache=$C distill.weights_file=$C/ensemble_weights.json distill.soft_loss=${SOFT:-kl} \
    distill.alpha=${ALPHA:-0.5} distill.temperature=1.0 distill.init_from=$T1/best.keras \
    train.epochs=${EPOCHS:-8} train.learning_rate=${LR:-0.001} train.seed=2 train.verbose=2
echo "distill: $(( $(date +%s) - start )) s"
RUN=$OUT/vote_student
ST=${STUDENT_TTA:-$TTA1}
$LS calibrate $RUN --tta $ST
INT8=$RUN/model_int8$([ "$ST" = none ] || echo "_$ST").tflite
$LS export $RUN --quant int8 --tta $ST --out $INT8
$LS evaluate --tflite $INT8 --split-file $RUN/split.json --data $DATA --format hc18 \
    --biometry --postprocess --out $RUN
echo "total: $(( $(date +%s) - start )) s"
