import json

import pytest

from lightseg_tf.errors import LightsegError
from lightseg_tf.core.workflow import Stage, run_stages


def _stages(calls, reads_b=1, fail_in=None):
    def make(name):
        def run(ctx, out):
            calls.append(name)
            if name == fail_in:
                (out / "half.txt").write_text("x")
                raise KeyboardInterrupt(name)
            (out / f"{name}.txt").write_text(name)
            return {"file": f"{name}.txt", "upstream": sorted(ctx.results)}
        return run

    return [Stage("a", make("a"), reads={"x": 1}),
            Stage("b", make("b"), reads={"y": reads_b}, depends=("a",)),
            Stage("c", make("c"), reads=None, depends=("b",)),
            Stage("d", make("d"), reads=None, depends=("a",))]


def test_second_run_skips_everything_and_results_are_kept(tmp_path):
    calls = []
    ctx = run_stages(_stages(calls), tmp_path)
    assert calls == ["a", "b", "c", "d"]
    assert ctx.results["c"] == {"file": "c.txt", "upstream": ["a", "b"]}
    assert (tmp_path / "stages" / "c" / "c.txt").read_text() == "c"
    calls.clear()
    ctx = run_stages(_stages(calls), tmp_path)
    assert calls == [] and ctx.results["b"]["file"] == "b.txt"


def test_changed_config_reruns_the_stage_and_its_dependents_only(tmp_path):
    run_stages(_stages([]), tmp_path)
    calls = []
    run_stages(_stages(calls, reads_b=2), tmp_path)
    assert calls == ["b", "c"]  # d depends on a only


def test_killed_stage_resumes_there_and_leaves_no_final_folder(tmp_path):
    calls = []
    with pytest.raises(KeyboardInterrupt):
        run_stages(_stages(calls, fail_in="c"), tmp_path)
    assert calls == ["a", "b", "c"]
    assert not (tmp_path / "stages" / "c").exists()
    assert (tmp_path / "stages" / "c.partial" / "half.txt").exists()  # kept for resuming
    calls.clear()
    run_stages(_stages(calls), tmp_path)
    assert calls == ["c", "d"]
    assert json.loads((tmp_path / "stages" / "c" / "done.json").read_text())["results"]["file"] == "c.txt"


def test_from_forces_later_stages_and_only_runs_one(tmp_path):
    run_stages(_stages([]), tmp_path)
    calls = []
    run_stages(_stages(calls), tmp_path, start="b")
    assert calls == ["b", "c", "d"]
    calls.clear()
    run_stages(_stages(calls, reads_b=5), tmp_path, only="d")
    assert calls == []  # d is done for its key; b's change does not touch d
    with pytest.raises(LightsegError, match="'b'"):
        run_stages(_stages(calls, reads_b=5), tmp_path, only="c")
    with pytest.raises(LightsegError, match="no such stage"):
        run_stages(_stages(calls), tmp_path, start="zz")


def test_each_stage_is_announced_with_its_place_in_the_run(tmp_path, caplog):
    caplog.set_level("INFO", logger="lightseg")
    run_stages(_stages([]), tmp_path)
    lines = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("[2/4] stage b            running (0 min 0") for m in lines)
    assert any(m.startswith("[4/4] stage d            done in") for m in lines)
    caplog.clear()
    run_stages(_stages([]), tmp_path)
    assert "[3/4] stage c            skipped (done for this config)" in [r.getMessage() for r in caplog.records]
