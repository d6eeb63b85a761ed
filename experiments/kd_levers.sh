#!/usr/bin/env bash
# Distillation levers side by side: one distilled student per (variant, seed) from the cache and
# ensemble weights of a finished `lightseg pipeline` run, scored on val and test (mean fg Dice).
# Compare with the labels-only rows of experiments/kd_seeds.sh on the same run and seeds.
#   bash experiments/kd_levers.sh PIPELINE_RUN [SEEDS] [TAG:OVERRIDE ...]
#   e.g. bash experiments/kd_levers.sh runs/quickstart "0 1 2 3" a03:distill.alpha=0.3 t4:distill.temperature=4.0
# One variant may hold several overrides separated by spaces: "e24t1:train.epochs=24 distill.temperature=1.0".
set -euo pipefail
RUN=${1:?give a finished pipeline run directory, e.g. runs/quickstart}
SEEDS=${2:-0 1 2 3}
shift $(( $# >= 2 ? 2 : $# ))
VARIANTS=("${@:-a03:distill.alpha=0.3}")
LS=${LIGHTSEG:-.venv/bin/lightseg}
PY=${PYTHON:-.venv/bin/python}
CFG=${CONFIG:-experiments/quickstart.yaml}
DATA=${DATA:-$RUN/stages/data/phantom}
OUT="$RUN/kd_levers"
for v in "${VARIANTS[@]}"; do
    tag=${v%%:*}
    read -r -a overrides <<< "${v#*:}"
    for seed in $SEEDS; do
        "$LS" distill --config "$CFG" "run_root=$OUT" "data.path=$DATA" data.format=${FORMAT:-lightseg} \
            "data.split_file=$RUN/stages/data/split.json" train.verbose=0 train.seed=$seed "name=${tag}_s$seed" "${overrides[@]}" \
            "distill.cache=$RUN/stages/cache" "distill.weights_file=$RUN/stages/ensemble/ensemble_weights.json" > /dev/null
        line=""
        for split in val test; do
            line+=$("$LS" evaluate "$OUT/${tag}_s$seed" --data "$DATA" --format ${FORMAT:-lightseg} --split $split --json \
                | "$PY" -c "import json,sys; print('$split', round(json.load(sys.stdin)['mean_fg_dice'], 4), end=' ')")
        done
        echo "$tag (${v#*:}) seed $seed: $line"
    done
done
