import subprocess
import sys

import pytest

from lightseg_tf.cli import build_parser, main


def _subcommands(parser):
    for action in parser._actions:
        if getattr(action, "choices", None) and isinstance(action.choices, dict):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subcommands(sub))


def test_every_subcommand_has_help(capsys):
    names = dict(_subcommands(build_parser()))
    assert {"demo", "data", "data synth", "data augment", "data split", "data inspect", "data fetch", "train",
            "evaluate", "calibrate", "models", "models list", "models summary", "quantize", "export", "benchmark", "measure",
            "explain", "robustness", "pipeline", "study", "teachers", "teachers predict", "ensemble",
            "ensemble tune", "distill", "tune"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as exit_:
            main([*name.split(), "--help"])
        assert exit_.value.code == 0
        assert "usage: lightseg" in capsys.readouterr().out


def test_user_error_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lightseg_tf", "evaluate", str(tmp_path / "nope.keras"),
         "--data", str(tmp_path / "missing")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("lightseg")]
    assert lines == [lines[0]] and "nope.keras" in lines[0]
    assert "Traceback" not in proc.stderr


def test_debug_flag_shows_traceback(capsys, tmp_path):
    assert main(["--debug", "train", "--config", str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "none.yaml" in err


def test_bad_override_names_key(capsys):
    assert main(["train", "data.image_sise=64"]) == 2
    assert "data.image_sise" in capsys.readouterr().err
