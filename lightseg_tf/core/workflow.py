"""Resumable multi-stage runs: each stage's artifacts are written atomically and skipped when
they already exist for the same config.

A stage's key is a hash of the config sections it reads plus the keys of the stages it
depends on, so changing an upstream setting re-runs everything downstream of it and nothing
else. A stage writes into ``stages/<name>.partial/`` and the folder is renamed to
``stages/<name>/`` (with ``done.json`` holding the key) only when the stage returns, so a run
killed inside a stage resumes at that stage, inside the kept ``.partial`` folder of the same key.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lightseg_tf.errors import LightsegError
from lightseg_tf.core.io import write_json_atomic
from lightseg_tf.core.log import LOG, format_duration, log_files_restored, log_paths_renamed


@dataclass(frozen=True)
class Stage:
    """One step of a workflow.

    Attributes:
        name: stage name (``--from`` / ``--only`` use it).
        run: ``run(ctx, out_dir) -> dict`` of JSON-safe results; writes files into ``out_dir``.
        reads: config values (any JSON-safe objects) whose change must re-run the stage.
        depends: names of earlier stages whose outputs it uses.
        about: what it does, in a few words, for the line that announces it.
    """

    name: str
    run: Callable[["Context", Path], dict]
    reads: Any = None
    depends: tuple[str, ...] = ()
    about: str = ""


@dataclass
class Context:
    """What stages share: the run directory and the finished stages' results and folders."""

    run_dir: Path
    results: dict[str, dict] = field(default_factory=dict)

    def stage_dir(self, name: str) -> Path:
        """The finished folder of stage ``name``."""
        return self.run_dir / "stages" / name


def stage_key(stage: Stage, upstream: dict[str, str]) -> str:
    """SHA-256 of the stage's name, what it reads, and its dependencies' keys."""
    blob = json.dumps({"name": stage.name, "reads": stage.reads,
                       "depends": {d: upstream[d] for d in stage.depends}},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def run_stages(stages: list[Stage], run_dir: str | Path, start: str | None = None,
               only: str | None = None) -> Context:
    """Run ``stages`` in order, skipping those already done with the same key.

    The log counts the stages that will run (``[k/N] stage name: about``), names the stages
    skipped once, and ends each stage with its time and final folder. Log lines written inside
    a stage name its final folder, not the in-progress ``.partial`` one they are written in.

    Args:
        stages: the workflow, in dependency order.
        run_dir: where ``stages/`` lives.
        start: force this stage and every later one to re-run (``--from``).
        only: run just this stage (its dependencies must be done).

    Returns:
        The context with every stage's results.
    """
    run_dir = Path(run_dir)
    names = [s.name for s in stages]
    for flag, value in (("--from", start), ("--only", only)):
        if value is not None and value not in names:
            raise LightsegError(f"{flag} {value!r}: no such stage; stages are {names}")
    ctx = Context(run_dir)
    todo, skipped = _plan(stages, ctx, start, only)
    if skipped:
        LOG.info("done for this config, skipped: %s", ", ".join(skipped))
    if not todo:
        LOG.info("nothing to run (--from STAGE re-runs a stage and every later one)")
    began = time.time()
    for k, (stage, key, previous, forced) in enumerate(todo, 1):
        tag = f"[{k}/{len(todo)}] stage {stage.name}"
        about = f": {stage.about}" if stage.about else ""
        final = ctx.stage_dir(stage.name)
        partial = final.with_name(final.name + ".partial")
        key_file = partial / "key.txt"
        if partial.exists() and (forced or not key_file.exists() or key_file.read_text() != key):
            shutil.rmtree(partial)
        resumed = partial.exists()
        partial.mkdir(parents=True, exist_ok=True)
        key_file.write_text(key)
        when = [f"{format_duration(time.time() - began)} into the run"]
        if resumed:  # a partial folder of the same key is kept: a stage such as training resumes inside it
            when.insert(0, f"resuming in its in-progress folder {partial}")
        if previous is not None and "seconds" in previous:
            when.append(f"its last run took {format_duration(previous['seconds'])}")
        LOG.info("%s%s (%s)", tag, about, "; ".join(when))
        t0 = time.time()
        try:
            with log_files_restored(), log_paths_renamed(partial, final):
                results = stage.run(ctx, partial) or {}
        except BaseException:
            LOG.info("%s stopped after %s; its in-progress folder %s is kept and a rerun resumes there",
                     tag, format_duration(time.time() - t0), partial)
            raise
        write_json_atomic(partial / "done.json", {"key": key, "results": results,
                                                  "seconds": round(time.time() - t0, 1)})
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        ctx.results[stage.name] = results
        LOG.info("%s done in %s: %s", tag, format_duration(time.time() - t0), final)
    if todo:
        LOG.info("%d of %d stages run in %s", len(todo), len(stages), format_duration(time.time() - began))
    ctx.results = {n: ctx.results[n] for n in names if n in ctx.results}  # in stage order, skipped or run
    return ctx


def _plan(stages: list[Stage], ctx: Context, start: str | None, only: str | None):
    """Which stages run, with their keys and last ``done.json``; loads the results of the others.

    Returns:
        ``([(stage, key, previous done.json or None, forced by --from)] to run, [names skipped as done])``.
    """
    keys: dict[str, str] = {}
    todo, skipped = [], []
    forced = False
    for stage in stages:
        missing = [d for d in stage.depends if d not in keys]
        if missing:
            raise LightsegError(f"stage {stage.name!r} depends on unknown or later stages {missing}")
        key = keys[stage.name] = stage_key(stage, keys)
        forced = forced or stage.name == start
        done_file = ctx.stage_dir(stage.name) / "done.json"
        done = json.loads(done_file.read_text()) if done_file.exists() else None
        is_done = done is not None and done["key"] == key
        if only is not None and stage.name != only:
            if not is_done and stage.name in _ancestors(stages, only):
                raise LightsegError(f"--only {only}: stage {stage.name!r} it builds on is not done "
                                    "for this config; run without --only first")
            if is_done:
                ctx.results[stage.name] = done["results"]
        elif is_done and not forced:
            ctx.results[stage.name] = done["results"]
            skipped.append(stage.name)
        else:
            todo.append((stage, key, done, forced))
    return todo, skipped


def _ancestors(stages: list[Stage], name: str) -> set[str]:
    by_name = {s.name: s for s in stages}
    todo, seen = list(by_name[name].depends), set()
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.add(d)
            todo.extend(by_name[d].depends)
    return seen
