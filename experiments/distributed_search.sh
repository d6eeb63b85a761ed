#!/usr/bin/env bash
# Distributed hyperparameter search on one machine with several processes, on the engines' own
# mechanisms (tiny phantom runs, a few minutes on 2 cores):
#  1. Optuna: two worker processes share one study through an RDB storage URL (SQLite here;
#     on a cluster use PostgreSQL: search.storage=postgresql://user:pass@host/db).
#  2. KerasTuner: a chief (the oracle server) and two workers, configured by environment
#     variables (KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT).
#   bash experiments/distributed_search.sh [RUN_ROOT]     (default runs/distributed_search)
set -euo pipefail
ROOT=${1:-runs/distributed_search}
LS=${LIGHTSEG:-.venv/bin/lightseg}
mkdir -p "$ROOT"
TINY=(data.image_size=32 data.batch_size=4 data.phantom_n=24 train.verbose=0 "model.options={base_filters: 4, depth: 2}"
      search.epochs=1 "run_root=$ROOT"
      "search.space={train.learning_rate: {low: 0.0005, high: 0.01, log: true}, model.options.base_filters: {choices: [4, 6, 8]}}")

echo "== Optuna: 2 workers, one SQLite study, 6 trials in all"
STORAGE="sqlite:///$(cd "$ROOT" && pwd)/optuna_shared.db"
for w in 1 2; do
    $LS tune --engine optuna --trials 6 "${TINY[@]}" name=optuna_shared "search.storage=$STORAGE" \
        > "$ROOT/optuna_worker$w.log" 2>&1 &
done
wait
tail -n 12 "$ROOT/optuna_worker1.log"

echo "== KerasTuner: chief + 2 workers, 4 trials"
export KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=${KT_PORT:-8765}
KERASTUNER_TUNER_ID=chief $LS tune --engine kerastuner --trials 4 "${TINY[@]}" name=kt_shared search.algorithm=random \
    > "$ROOT/kt_chief.log" 2>&1 &
chief=$!
sleep 5
for w in 0 1; do
    KERASTUNER_TUNER_ID=tuner$w $LS tune --engine kerastuner --trials 4 "${TINY[@]}" name=kt_shared \
        search.algorithm=random > "$ROOT/kt_worker$w.log" 2>&1 &
done
wait
tail -n 10 "$ROOT/kt_chief.log"
grep -h "^worker" "$ROOT"/kt_worker*.log
