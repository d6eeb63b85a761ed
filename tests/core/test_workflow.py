import json
import logging

import pytest

from lightseg_tf.core.log import LOG, attach_log_file
from lightseg_tf.errors import LightsegError
from lightseg_tf.core.workflow import Stage, run_stages


def _stages(calls, reads_b=1, fail_in=None, nested_log=False):
    def make(name):
        def run(ctx, out):
            calls.append(name)
            if nested_log:  # as a training run inside a pipeline stage opens its own log
                attach_log_file(out / "log.txt")
            if name == fail_in:
                (out / "half.txt").write_text("x")
                raise KeyboardInterrupt(name)
            (out / f"{name}.txt").write_text(name)
            LOG.info("wrote %s", out / f"{name}.txt")
            return {"file": f"{name}.txt", "upstream": sorted(ctx.results)}
        return run

    return [Stage("a", make("a"), reads={"x": 1}, about="make a"),
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


def _messages(caplog):
    out = [r.getMessage() for r in caplog.records]
    caplog.clear()
    return out


def test_the_log_counts_the_stages_that_run_and_names_final_folders(tmp_path, caplog):
    caplog.set_level("INFO", logger="lightseg")
    stages = tmp_path / "stages"
    run_stages(_stages([]), tmp_path)
    lines = _messages(caplog)
    assert lines[0].startswith("[1/4] stage a: make a (") and lines[0].endswith(" s into the run)")
    assert lines[1] == f"wrote {stages / 'a' / 'a.txt'}"  # written in a.partial, logged where it ends up
    assert lines[2].startswith("[1/4] stage a done in ") and lines[2].endswith(f" s: {stages / 'a'}")
    assert lines[3].startswith("[2/4] stage b (") and lines[-1].startswith("4 of 4 stages run in ")
    assert not [m for m in lines if ".partial" in m]

    run_stages(_stages([], reads_b=2), tmp_path)  # b changed: b and c run, a and d are skipped
    lines = _messages(caplog)
    assert lines[0] == "done for this config, skipped: a, d"
    assert lines[1].startswith("[1/2] stage b (") and "its last run took " in lines[1]
    assert [m.split(" (")[0] for m in lines if m.startswith("[") and " (" in m] == ["[1/2] stage b", "[2/2] stage c"]

    run_stages(_stages([], reads_b=2), tmp_path)
    assert _messages(caplog) == ["done for this config, skipped: a, b, c, d",
                                 "nothing to run (--from STAGE re-runs a stage and every later one)"]


def test_a_stopped_stage_names_its_in_progress_folder(tmp_path, caplog):
    caplog.set_level("INFO", logger="lightseg")
    partial = tmp_path / "stages" / "c.partial"
    with pytest.raises(KeyboardInterrupt):
        run_stages(_stages([], fail_in="c"), tmp_path)
    stopped = _messages(caplog)[-1]
    assert stopped.startswith("[3/4] stage c stopped after ")
    assert stopped.endswith(f"its in-progress folder {partial} is kept and a rerun resumes there")
    run_stages(_stages([]), tmp_path)
    assert f"[1/2] stage c (resuming in its in-progress folder {partial}; " in _messages(caplog)[1]


@pytest.fixture
def lightseg_log():
    """Leaves the ``lightseg`` logger's handlers as the test found them."""
    handlers, propagate = list(LOG.handlers), LOG.propagate
    yield
    for h in [h for h in LOG.handlers if h not in handlers]:
        LOG.removeHandler(h)
        h.close()
    LOG.propagate = propagate


def test_the_run_log_holds_every_stage_and_a_stage_log_only_its_own(tmp_path, lightseg_log):
    attach_log_file(tmp_path / "log.txt")
    run_stages(_stages([], nested_log=True), tmp_path)
    LOG.info("after the stages")
    files = [h.baseFilename for h in LOG.handlers if isinstance(h, logging.FileHandler)]
    assert files == [str(tmp_path / "log.txt")]  # the stages' own logs are closed with them
    top = (tmp_path / "log.txt").read_text()
    for k, name in enumerate("abcd", 1):
        assert f"[{k}/4] stage {name} done in" in top and f"wrote {tmp_path / 'stages' / name / name}.txt" in top
    assert "after the stages" in top
    b_log = (tmp_path / "stages" / "b" / "log.txt").read_text()
    assert "wrote" in b_log and "stage c" not in b_log and "after the stages" not in b_log
