#!/usr/bin/env bash
# HC18, CPU profile: the rtseg student on a subject-grouped split of ../shared/datasets/hc18,
# 128 px letterbox, 10 epochs; then test Dice and head-circumference error in mm.
# Usage: bash experiments/hc18_cpu.sh [RUN_ROOT]   (default runs/hc18)
set -euo pipefail
ROOT=${1:-runs/hc18}
DATA=${HC18:-../shared/datasets/hc18}
LS=.venv/bin/lightseg
$LS train name=rtseg_cpu run_root=$ROOT data.path=$DATA data.format=hc18 model.name=rtseg "model.options={}" \
    data.image_size=128 data.batch_size=8 train.epochs=10 train.learning_rate=0.003 train.verbose=2
RUN=$ROOT/rtseg_cpu
$LS evaluate $RUN --data $DATA --format hc18 --json > $RUN/test.json
.venv/bin/python - "$RUN" "$DATA" <<'PY'
import json, sys
import numpy as np
import lightseg_tf  # noqa: F401
from lightseg_tf.anatomy.biometry import measure_mask
from lightseg_tf.evaluation.measure import predict_mask
from lightseg_tf.training.trainer import load_trained_model, open_run
run, data = sys.argv[1], sys.argv[2]
rd = open_run(run)
model = load_trained_model(run)
test = rd.part("test")
err = []
for rec in test.records:
    m = measure_mask(predict_mask(model, test.load_image(rec)), test.classes, rec.pixel_size_mm)
    err.append(abs(m["hc"] - rec.hc_mm) if "hc" in m else float("nan"))
err = np.array(err)
s = json.load(open(f"{run}/test.json"))
out = {"test_images": len(err), "dice_head": s["per_class"]["head"]["dice"], "hd95_mm": s["per_class"]["head"]["hd95"],
       "hc_abs_err_mm_median": float(np.nanmedian(err)), "hc_abs_err_mm_mean": float(np.nanmean(err)),
       "no_head_found": int(np.isnan(err).sum())}
json.dump(out, open(f"{run}/hc_error.json", "w"), indent=2)
print(json.dumps(out, indent=2))
PY
