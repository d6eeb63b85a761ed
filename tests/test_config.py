from pathlib import Path

import pytest

from lightseg_tf.config import ConfigError, dump_config, load_config


def test_defaults_yaml_and_overrides_stack(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: exp1\ndata:\n  image_size: 64\n  augment:\n    hflip: 0.0\nmodel:\n  options: {depth: 3}\n")
    cfg = load_config(path, ["data.batch_size=4", "train.learning_rate=1e-3", "data.format=hc18",
                             "loss.terms={dice: 1, lovasz: 0.5}"])
    assert cfg.name == "exp1" and cfg.data.image_size == 64 and cfg.data.augment.hflip == 0.0
    assert cfg.data.augment.affine == 0.7  # untouched default in a partially overridden section
    assert cfg.model.options == {"depth": 3}
    assert cfg.data.batch_size == 4 and cfg.train.learning_rate == 1e-3 and cfg.data.format == "hc18"
    assert cfg.loss.terms == {"dice": 1.0, "lovasz": 0.5}
    assert isinstance(cfg.loss.terms["dice"], float)
    # The resolved config round-trips through YAML.
    (tmp_path / "r.yaml").write_text(dump_config(cfg))
    assert load_config(tmp_path / "r.yaml") == cfg


@pytest.mark.parametrize("override,fragment", [
    ("data.imgsize=64", "data.imgsize"),
    ("nosuch.key=1", "nosuch"),
    ("data.augment.flip=0.5", "data.augment.flip"),
    ("data.image_size=big", "data.image_size"),
    ("data.image_size=1.5", "data.image_size"),
    ("data.cache=3", "data.cache"),
    ("train.optimizer=rmsprop", "train.optimizer"),
    ("loss.terms={dice: high}", "loss.terms.dice"),
    ("data=5", "data"),
    ("noequals", "key.sub=value"),
])
def test_errors_name_the_key(override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert fragment in str(err.value)


def test_yaml_file_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.epochz"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_optional_and_int_to_float():
    cfg = load_config(None, ["data.format=null", "train.weight_decay=0"])
    assert cfg.data.format is None and cfg.train.weight_decay == 0.0


def test_a_dotted_key_inside_a_mapping_sets_one_entry_and_keeps_the_others():
    from lightseg_tf.config import with_overrides

    cfg = load_config(None, ["model.options.depth=3"])
    assert cfg.model.options == {"base_filters": 16, "depth": 3}
    other = with_overrides(cfg, {"model.options.width": 0.5, "distill.alpha": 0.7})
    assert other.model.options == {"base_filters": 16, "depth": 3, "width": 0.5} and other.distill.alpha == 0.7
    assert cfg.model.options == {"base_filters": 16, "depth": 3}  # the original is untouched
    with pytest.raises(ConfigError, match="distill.alpah"):
        with_overrides(cfg, {"distill.alpah": 0.7})


@pytest.mark.parametrize("override, key", [
    ("data.batch_size=-2", "data.batch_size"), ("data.image_size=0", "data.image_size"),
    ("data.image_size=33", "data.image_size"), ("train.epochs=0", "train.epochs"),
    ("train.learning_rate=.nan", "train.learning_rate"), ("distill.alpha=1.5", "distill.alpha"),
    ("data.augment.hflip=2", "data.augment.hflip"), ("data.test_fraction=0.9", "data.val_fraction"),
])
def test_out_of_range_values_stop_at_load_and_write_nothing(tmp_path, monkeypatch, capsys, override, key):
    from lightseg_tf.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])
    assert main(["train", override, f"run_root={tmp_path / 'runs'}", "name=x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0]
    assert not (tmp_path / "runs").exists()  # no config.yaml left to block the corrected rerun


def test_a_bare_on_or_off_from_yaml_is_the_string_where_the_choice_has_them():
    assert load_config(None, ["train.mixed_precision=off"]).train.mixed_precision == "off"
    assert load_config(None, ["train.mixed_precision=on"]).train.mixed_precision == "on"
    with pytest.raises(ConfigError, match="strategy"):
        load_config(None, ["train.strategy=off"])  # no on/off among its choices: still an error


PROFILES = sorted((Path(__file__).parents[1] / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", PROFILES, ids=[p.name for p in PROFILES])
def test_every_shipped_profile_is_a_valid_config(path):
    # A profile edited by hand (a typo'd key, a soft loss that does not exist) must fail here, not
    # an hour into someone's run.
    load_config(path)
