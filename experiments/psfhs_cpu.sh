#!/usr/bin/env bash
# PSFHS, CPU profile: the rtseg and LightSeg students trained on one split, int8 post-training
# quantization calibrated on TRAIN, test Dice / HD95 of the int8 models (with Dice per block of 50
# ids: recordings drift with id; and each structure's Dice on images flagged "low confidence" vs
# not, the thresholds calibrated on VAL), and the latency table of both, side by side.
#   bash experiments/psfhs_cpu.sh [RUN_ROOT]      (default runs/psfhs_cpu; ~40 min on 2 cores)
# Environment: MODELS="rtseg lightseg_student" (any of rtseg, lightseg_student, unet12: a U-Net of
# base 12, depth 4, 1.1 M parameters), SIZE (letterbox side, default 128; PSFHS images are 256),
# HOLDOUT=random|last (last: the test side is the last id blocks, the "unseen recordings" test
# of issue 19; random: id blocks dealt at random), WIDTH / EPOCHS_LS for the LightSeg student
# (half width, 8 epochs by default: WIDTH=1.0 EPOCHS_LS=10 is the paper's 1.34 M-parameter
# student, about 4x the training time here), and any further config overrides in EXTRA
# (e.g. EXTRA="data.augment.brightness_contrast=0.8"); TTA=hflip|flips also calibrates, exports
# (model_int8_<TTA>.tflite, the views built into the graph) and scores the int8 model with that TTA.
set -euo pipefail
ROOT=${1:-runs/psfhs_cpu}
DATA=${PSFHS:-../shared/datasets/psfhs}
LS=${LIGHTSEG:-.venv/bin/lightseg}
MODELS=${MODELS:-rtseg lightseg_student}
HOLDOUT=${HOLDOUT:-random}
SIZE=${SIZE:-128}
t0=$(date +%s)
mkdir -p "$ROOT"
$LS data split "$DATA" --format psfhs --out "$ROOT/split.json" --test-holdout "$HOLDOUT"
CFG=(--config experiments/psfhs_cpu.yaml "run_root=$ROOT" "data.path=$DATA" "data.split_file=$ROOT/split.json"
     train.verbose=2 data.image_size=$SIZE ${EXTRA:-})
for run in $MODELS; do
    case $run in
        rtseg) $LS train "${CFG[@]}" name=rtseg model.name=rtseg "model.options={}" ;;
        lightseg_student) $LS train "${CFG[@]}" name=lightseg_student model.name=lightseg_student \
            "model.options={width: ${WIDTH:-0.5}}" train.epochs=${EPOCHS_LS:-8} ;;
        unet12) $LS train "${CFG[@]}" name=unet12 model.name=unet "model.options={base_filters: 12, depth: 4}" ;;
        *) echo "unknown model $run (rtseg, lightseg_student or unet12)" >&2; exit 2 ;;
    esac
    $LS evaluate "$ROOT/$run" --data "$DATA" --format psfhs --out "$ROOT/$run" --blocks 50 > /dev/null
    # The "low confidence" thresholds (head score and each structure's margin), chosen on VAL;
    # export copies them into the card and the int8 evaluation reports Dice flagged vs unflagged.
    $LS calibrate "$ROOT/$run"
    $LS export "$ROOT/$run" --quant int8 --out "$ROOT/$run/model_int8.tflite"
    $LS evaluate --tflite "$ROOT/$run/model_int8.tflite" --data "$DATA" --format psfhs \
        --split-file "$ROOT/split.json" --out "$ROOT/$run" --blocks 50
    if [ "${TTA:-none}" != none ]; then
        $LS calibrate "$ROOT/$run" --tta "$TTA"
        $LS export "$ROOT/$run" --quant int8 --tta "$TTA" --out "$ROOT/$run/model_int8_$TTA.tflite"
        $LS evaluate --tflite "$ROOT/$run/model_int8_$TTA.tflite" --data "$DATA" --format psfhs \
            --split-file "$ROOT/split.json" --out "$ROOT/$run" --blocks 50
    fi
done
$LS benchmark $(for m in $MODELS; do echo "$ROOT/$m"; done) --size $SIZE --runs 50 --out "$ROOT/bench" | tee "$ROOT/benchmark.md"
echo "wall time $(( $(date +%s) - t0 )) s"
