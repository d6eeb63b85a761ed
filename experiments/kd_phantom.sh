#!/usr/bin/env bash
# Does distillation help? Three small teachers -> cache -> tuned weighted ensemble -> the
# LightSeg student distilled from it, against the same student trained on the labels alone
# (same loss, seed, split, epochs, augmentation). Phantom data, CPU profile (~45 min on 2 cores).
#
#   bash experiments/kd_phantom.sh [RUN_ROOT]     # default runs/kd_phantom
set -euo pipefail
ROOT=${1:-runs/kd_phantom}
LS=${LIGHTSEG:-.venv/bin/lightseg}
EPOCHS_T=${EPOCHS_T:-20}
EPOCHS_S=${EPOCHS_S:-15}
COMMON=(data.image_size=128 data.batch_size=8 data.phantom_n=160 train.seed=0 train.learning_rate=0.005
        "run_root=$ROOT")
PH="$ROOT/t_unet/phantom"
SPLIT="$ROOT/t_unet/split.json"
SHARED=("data.path=$PH" "data.split_file=$SPLIT")
t0=$(date +%s)

$LS train "${COMMON[@]}" name=t_unet model.name=unet "model.options={base_filters: 16, depth: 4}" \
    train.epochs=$EPOCHS_T
$LS train "${COMMON[@]}" "${SHARED[@]}" name=t_attention_unet model.name=attention_unet \
    "model.options={base_filters: 16, depth: 4}" train.epochs=$EPOCHS_T
$LS train "${COMMON[@]}" "${SHARED[@]}" name=t_unetpp model.name=unetpp \
    "model.options={base_filters: 16, depth: 4}" train.epochs=$EPOCHS_T
$LS teachers predict "$ROOT/t_unet" "$ROOT/t_attention_unet" "$ROOT/t_unetpp" --out "$ROOT/cache"
$LS ensemble tune --cache "$ROOT/cache" --trials 100 --engine optuna

STUDENT=(model.name=lightseg_student "model.options={width: 1.0}" "loss.terms={dlce: 1.0}" train.epochs=$EPOCHS_S)
$LS train "${COMMON[@]}" "${SHARED[@]}" "${STUDENT[@]}" name=s_plain
$LS distill "${COMMON[@]}" "${STUDENT[@]}" "distill.cache=$ROOT/cache" distill.alpha=0.5 distill.temperature=2.0 \
    name=s_distilled

for run in t_unet t_attention_unet t_unetpp s_plain s_distilled; do
    echo "== $run (test split)"
    $LS evaluate "$ROOT/$run" --data "$PH" --split test --out "$ROOT/$run" --json \
        | python3 -c 'import json,sys; s=json.load(sys.stdin); s=s.get("raw", s); print("mean fg Dice", round(s["mean_fg_dice"], 4), {k: round(v["dice"], 4) for k, v in s["per_class"].items() if v["dice"] is not None})'
done
echo "wall time $(( $(date +%s) - t0 )) s"
