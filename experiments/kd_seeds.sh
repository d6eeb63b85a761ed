#!/usr/bin/env bash
# Does distillation help the student? Distilled vs labels-only, same loss, split, epochs and
# augmentation, over several seeds (one seed's difference is within run-to-run noise on CPU).
# Uses the teachers' cache and tuned weights of a finished `lightseg pipeline` run.
#   bash experiments/kd_seeds.sh PIPELINE_RUN [SEEDS]     e.g. runs/quickstart "1 2 3"
set -euo pipefail
RUN=${1:?give a finished pipeline run directory, e.g. runs/quickstart}
SEEDS=${2:-1 2 3}
LS=${LIGHTSEG:-.venv/bin/lightseg}
CFG=${CONFIG:-experiments/quickstart.yaml}
OUT="$RUN/kd_seeds"
COMMON=(--config "$CFG" "run_root=$OUT" "data.path=$RUN/stages/data/phantom" data.format=lightseg
        "data.split_file=$RUN/stages/data/split.json" train.verbose=0)
for seed in $SEEDS; do
    $LS train "${COMMON[@]}" train.seed=$seed name=labels_s$seed > /dev/null
    $LS distill "${COMMON[@]}" train.seed=$seed name=distilled_s$seed "distill.cache=$RUN/stages/cache" \
        "distill.weights_file=$RUN/stages/ensemble/ensemble_weights.json" > /dev/null
    for kind in labels distilled; do
        $LS evaluate "$OUT/${kind}_s$seed" --data "$RUN/stages/data/phantom" --format lightseg --json \
            | python3 -c "import json,sys; s=json.load(sys.stdin); print('$kind', $seed, round(s['mean_fg_dice'], 4), {k: round(v['dice'], 4) for k, v in s['per_class'].items()})"
    done
done
