"""Two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy, ring all-reduce on CPU).

``lightseg train`` and ``lightseg distill`` run as a two-worker cluster from ``TF_CONFIG``: both
workers finish, the chief alone writes the run directory, and a cluster whose worker is killed
mid-run resumes from the chief's BackupAndRestore checkpoint when it is restarted.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TINY = ["data.image_size=32", "data.batch_size=4", "model.options={base_filters: 4, depth: 2}", "train.verbose=0",
        "data.augment.enabled=false", "train.strategy=multi_worker"]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start_cluster(args: list[str], cwd: Path, tag: str) -> list[subprocess.Popen]:
    """Two ``lightseg`` workers; worker 0 is the chief. Their output goes to ``cwd/{tag}{i}.log``."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
               "TMPDIR": str(cwd / "tmp")}
        (cwd / "tmp").mkdir(exist_ok=True)
        log = open(cwd / f"{tag}{i}.log", "w")
        procs.append(subprocess.Popen([sys.executable, "-m", "lightseg_tf", *args], cwd=cwd, env=env,
                                      stdout=log, stderr=subprocess.STDOUT))
    return procs


def _wait(procs, cwd: Path, tag: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    for i, p in enumerate(procs):
        try:
            rc = p.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"worker {i} did not finish in {timeout:.0f} s:\n" + (cwd / f"{tag}{i}.log").read_text()[-3000:])
        if rc != 0:
            for q in procs:
                q.kill()
            logs = "\n".join(f"--- worker {j} ---\n" + (cwd / f"{tag}{j}.log").read_text()[-3000:]
                             for j in range(len(procs)))
            pytest.fail(f"worker {i} failed (rc {rc}):\n{logs}")


def _epochs(history_csv: Path) -> list[int]:
    with history_csv.open() as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def test_two_workers_train_and_distill_and_only_the_chief_writes(tmp_path):
    run = tmp_path / "runs" / "mw"
    procs = _start_cluster(["train", *TINY, "data.phantom_n=16", "train.epochs=2", "run_root=runs", "name=mw"],
                           tmp_path, "train")
    _wait(procs, tmp_path, "train")
    assert (run / "final.keras").exists() and (run / "best.keras").exists()
    assert _epochs(run / "history.csv") == [0, 1]  # one writer: no row twice
    assert "2 replicas" in (run / "log.txt").read_text()
    assert not list((tmp_path / "tmp").glob("lightseg-*")), "a worker left its scratch run directory behind"
    assert not (run / "backup").exists()

    # A teacher cache from the trained run (one process), then a two-worker distillation from it.
    assert subprocess.run([sys.executable, "-m", "lightseg_tf", "teachers", "predict", str(run),
                           "--out", "cache"], cwd=tmp_path, capture_output=True).returncode == 0
    procs = _start_cluster(["distill", *TINY, "distill.cache=cache", "train.epochs=1", "run_root=runs", "name=kd"],
                           tmp_path, "distill")
    _wait(procs, tmp_path, "distill")
    kd = tmp_path / "runs" / "kd"
    assert (kd / "final.keras").exists() and _epochs(kd / "history.csv") == [0]
    assert "soft_loss" in (kd / "history.csv").read_text()
    assert not list((tmp_path / "tmp").glob("lightseg-*"))


def test_a_killed_worker_and_a_restarted_cluster_resume_from_the_backup(tmp_path):
    args = ["train", *TINY, "data.phantom_n=48", "train.epochs=6", "run_root=runs", "name=mwk"]
    run = tmp_path / "runs" / "mwk"
    procs = _start_cluster(args, tmp_path, "first")
    deadline = time.time() + 180
    while not (run / "backup" / "chief" / "checkpoint").exists():  # epoch 1 backed up by the chief
        assert time.time() < deadline and all(p.poll() is None for p in procs), \
            (tmp_path / "first0.log").read_text()[-3000:]
        time.sleep(0.1)
    procs[1].send_signal(signal.SIGKILL)
    try:  # the chief's collectives fail once its peer is gone (or it would hang: then it is killed too)
        procs[0].wait(timeout=90)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        procs[0].wait()
    assert procs[0].returncode != 0, "the chief finished although its peer was killed mid-run"
    killed_at = _epochs(run / "history.csv")
    assert len(killed_at) < 6
    # A past best no resumed epoch can beat: a worker that judged "improved" from anything but
    # the chief's history would save alone, and its save's collective reads (the metrics'
    # SyncOnRead variables) would then wait for a chief that never joins them.
    _raise_logged_best(run / "history.csv", 0.999)
    best_before = (run / "best.keras").stat().st_mtime_ns

    procs = _start_cluster(args, tmp_path, "second")
    _wait(procs, tmp_path, "second")
    log = (run / "log.txt").read_text()
    assert (run / "final.keras").exists() and _epochs(run / "history.csv") == list(range(6))
    assert "resuming at epoch" in log, log  # resumed, not restarted from epoch 1
    assert (run / "best.keras").stat().st_mtime_ns == best_before  # no resumed epoch beat 0.999


def _raise_logged_best(history_csv: Path, value: float) -> None:
    with history_csv.open() as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["val_mean_fg_dice"] = str(value)
    with history_csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
