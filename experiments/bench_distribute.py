"""Images/s of one training epoch: one device vs two logical devices (mirrored) vs two workers.

Issue 20's correctness setups timed on this machine: ``lightseg_student`` at 256 px on the
phantom, ``data.batch_size`` 8 (the global batch in every setup), the training part of the
second epoch of each run timed (the first traces the step). Two logical CPU devices and two
worker processes share the same cores, so no speed-up is expected on a 2-core machine; the numbers say what the
synchronisation costs. Each setup runs in fresh processes, ``--repeats`` times; medians.

    python experiments/bench_distribute.py --repeats 3 --images 48 --out /tmp/bench_distribute.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZE, BATCH = 256, 8
OVERRIDES = [f"data.image_size={SIZE}", f"data.batch_size={BATCH}",
             "model.name=lightseg_student", "model.options={}", "train.epochs=2", "train.verbose=0", "data.augment.enabled=false"]


def worker(setup: str, root: str, out: str, n_images: str) -> None:
    """One training process of ``setup``; writes ``{"seconds": epoch 2's training, "images": train images}``."""
    if setup == "mirrored2":
        import lightseg_tf  # noqa: F401
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tf_keras as keras

    from lightseg_tf.config import load_config
    from lightseg_tf.training.trainer import train

    class Clock(keras.callbacks.Callback):
        """Seconds of the training part of the last epoch (validation, which fit runs inside the
        epoch through the same callbacks, is left out)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.t0, self.seconds = time.perf_counter(), None

        def on_test_begin(self, logs=None):
            if self.seconds is None:
                self.seconds = time.perf_counter() - self.t0

        def on_epoch_end(self, epoch, logs=None):
            if self.seconds is None:
                self.seconds = time.perf_counter() - self.t0

    strategy = {"one": "default", "mirrored2": "mirrored", "workers2": "multi_worker"}[setup]
    cfg = load_config(None, [*OVERRIDES, f"data.phantom_n={n_images}", f"train.strategy={strategy}",
                             f"run_root={root}", "name=bench"])
    clock = Clock()
    result = train(cfg, extra_callbacks=[clock])
    n = len(json.loads((result.run_dir / "split.json").read_text())["train"]) if (result.run_dir / "split.json").exists() else 0
    Path(out).write_text(json.dumps({"seconds": clock.seconds, "images": n}))


def run_setup(setup: str, n_images: int) -> float:
    """Images/s of the timed epoch of one fresh run of ``setup``."""
    with tempfile.TemporaryDirectory() as tmp:
        procs, outs = [], []
        n_proc = 2 if setup == "workers2" else 1
        ports = []
        for _ in range(n_proc):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        for i in range(n_proc):
            env = dict(os.environ)
            if setup == "workers2":
                env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                               "task": {"type": "worker", "index": i}})
            outs.append(Path(tmp) / f"out{i}.json")
            procs.append(subprocess.Popen([sys.executable, __file__, "--worker", setup, tmp, str(outs[-1]), str(n_images)], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for p in procs:
            _, err = p.communicate()
            if p.returncode:
                raise SystemExit(f"{setup}: a process failed:\n{err.decode()[-2000:]}")
        chief = json.loads(outs[0].read_text())
        return chief["images"] / chief["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="")
    ap.add_argument("--images", type=int, default=48, help="phantom images (70 %% of them train)")
    ap.add_argument("--worker", nargs=4, metavar=("SETUP", "ROOT", "OUT", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    setups = ("one", "mirrored2", "workers2")
    rates: dict[str, list[float]] = {s: [] for s in setups}
    for _ in range(args.repeats):  # interleaved, so a noisy minute hits every setup alike
        for s in setups:
            rates[s].append(run_setup(s, args.images))
    result = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "size": SIZE, "global_batch": BATCH,
              "phantom_images": args.images,
              "images_per_s": {s: statistics.median(v) for s, v in rates.items()}, "all": rates}
    base = result["images_per_s"]["one"]
    result["ratio_to_one"] = {s: v / base for s, v in result["images_per_s"].items()}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
