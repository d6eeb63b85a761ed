#!/usr/bin/env bash
# Does distillation help the student? Distilled vs labels-only, same loss, split, epochs and
# augmentation, over several seeds (one seed's difference is within run-to-run noise on CPU),
# for one or more soft losses (distill.soft_loss). Uses the teachers' cache and ensemble weights
# of a finished `lightseg pipeline` run; prints one line per run with VAL and TEST mean
# foreground Dice and the per-class TEST Dice.
#   bash experiments/kd_seeds.sh PIPELINE_RUN [SEEDS] [SOFT_LOSSES]
#   e.g. bash experiments/kd_seeds.sh runs/quickstart "1 2 3" "kl kl_agree cwd"
# Real data: DATA=folder FORMAT=reader CONFIG=profile.yaml; extra overrides for every run in $OVERRIDES
# (e.g. OVERRIDES="train.epochs=24"), for the distilled runs only in $KD_OVERRIDES (e.g. "train.epochs=8
# distill.unlabelled=false"), evaluation flags in $EVAL_FLAGS (e.g. "--biometry --postprocess" for
# HC18: Dice after the post-processing and the HC error in mm), the runs in $OUT (default
# PIPELINE_RUN/kd_seeds). Without a pipeline run, give PIPELINE_RUN as "-" and the pieces: CACHE (a
# `lightseg teachers predict` folder), SPLIT (its split file), DATA and OUT, optionally WEIGHTS
# (ensemble_weights.json; default: the cache's own, else equal).
set -euo pipefail
RUN=${1:?give a finished pipeline run directory, e.g. runs/quickstart}
SEEDS=${2:-1 2 3}
LOSSES=${3:-kl}
LS=${LIGHTSEG:-.venv/bin/lightseg}
PY=${PYTHON:-.venv/bin/python}
CFG=${CONFIG:-experiments/quickstart.yaml}
if [ "$RUN" = "-" ]; then
    : "${CACHE:?give CACHE}" "${SPLIT:?give SPLIT}" "${DATA:?give DATA}" "${OUT:?give OUT}"
    WEIGHTS=${WEIGHTS:-}
else
    OUT=${OUT:-$RUN/kd_seeds}
    DATA=${DATA:-$RUN/stages/data/phantom}
    CACHE=${CACHE:-$RUN/stages/cache}
    SPLIT=${SPLIT:-$RUN/stages/data/split.json}
    WEIGHTS=${WEIGHTS:-$RUN/stages/ensemble/ensemble_weights.json}
fi
read -r -a EXTRA <<< "${OVERRIDES:-}"
read -r -a KD_EXTRA <<< "${KD_OVERRIDES:-}"
# The distilled runs train the pipeline's pipeline.distill_epochs (0 = train.epochs), as the chain does.
DEPOCHS=$("$PY" -c "import sys; from lightseg_tf.config import load_config; c = load_config(sys.argv[1], sys.argv[2:]); print(c.pipeline.distill_epochs or c.train.epochs)" "$CFG" "${EXTRA[@]}")
COMMON=(--config "$CFG" "run_root=$OUT" "data.path=$DATA" data.format=${FORMAT:-lightseg} "data.split_file=$SPLIT"
        train.verbose=0 "${EXTRA[@]}")
# One split's figures from `lightseg evaluate --json`: mean foreground Dice (after the post-processing
# when EVAL_FLAGS has --postprocess), per-class Dice on TEST, and with --biometry the HC error in mm.
SUMMARY='import json, sys  # no single quotes in here: the shell string ends at one
s, split = json.load(sys.stdin), sys.argv[1]
seg = s.get("segmentation", s)  # --biometry: {"segmentation": ..., "hc_error_mm": ...}
if isinstance(seg.get("postprocessed"), dict):  # --postprocess: {"raw": ..., "postprocessed": ...}
    seg = seg["postprocessed"]
out = "%s %.4f " % (split, seg["mean_fg_dice"])
if split == "test":
    out += str({k: round(v["dice"], 4) for k, v in seg["per_class"].items()}) + " "
    if "hc_error_mm" in s:
        hc = s["hc_error_mm"]
        out += "HC abs %.2f mm signed %+.2f mm " % (hc["mean_abs"], hc["mean_signed"])
print(out, end="")'
read -r -a EVAL <<< "${EVAL_FLAGS:-}"
score() {  # KIND SEED RUN_DIR
    local line=""
    for split in val test; do
        line+=$("$LS" evaluate "$3" --data "$DATA" --format ${FORMAT:-lightseg} --split $split --json "${EVAL[@]}" \
                | "$PY" -c "$SUMMARY" $split)
    done
    echo "$1 seed $2: $line"
}
for seed in $SEEDS; do
    $LS train "${COMMON[@]}" train.seed=$seed name=labels_s$seed > /dev/null
    score labels $seed "$OUT/labels_s$seed"
    for loss in $LOSSES; do
        $LS distill "${COMMON[@]}" train.seed=$seed name=${loss}_s$seed "distill.soft_loss=$loss" \
            "distill.cache=$CACHE" "distill.weights_file=$WEIGHTS" \
            train.epochs=$DEPOCHS "${KD_EXTRA[@]}" > /dev/null
        score "$loss" $seed "$OUT/${loss}_s$seed"
    done
done
