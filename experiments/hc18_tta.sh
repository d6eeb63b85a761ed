#!/usr/bin/env bash
# HC18: mirroring test-time augmentation built into the int8 export, scored side by side with the
# run's plain int8 export. For each mode: calibrate the confidence with that TTA on VAL, export int8
# with the TTA inside the graph (model_int8_<mode>.tflite), then test Dice (raw and with the ellipse)
# and the HC error by quartile with its sign. The run's confidence.json ends calibrated for the
# last mode; the plain export's card keeps the threshold it was made with.
# Usage: bash experiments/hc18_tta.sh RUN [MODES]   (MODES default "hflip"; "hflip flips" for a run
#   trained with data.augment.vflip)
set -euo pipefail
RUN=$1
MODES=${2:-hflip}
DATA=${HC18:-../shared/datasets/hc18}
LS=${LS:-.venv/bin/lightseg}
for MODE in $MODES; do
    start=$(date +%s)
    $LS calibrate $RUN --tta $MODE
    $LS export $RUN --quant int8 --tta $MODE --out $RUN/model_int8_$MODE.tflite
    $LS evaluate --tflite $RUN/model_int8_$MODE.tflite --split-file $RUN/split.json --data $DATA --format hc18 \
        --biometry --postprocess --out $RUN
    echo "$MODE: $(( $(date +%s) - start )) s"
done
