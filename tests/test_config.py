from pathlib import Path

import pytest

from paco_fr.config import ConfigError, ProjectConfig, apply_overrides, load_config, to_dict

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def test_params_yaml_loads_into_typed_config():
    cfg = load_config(PARAMS)
    assert isinstance(cfg, ProjectConfig)
    assert cfg.masking.strategy == "structured"
    assert cfg.train.betas == (0.9, 0.95)
    assert cfg.applied == []


def test_params_yaml_sets_every_field_it_has_a_default_for():
    # A field missing from params.yaml would silently take the code default: keep them in sync.
    import yaml

    raw = yaml.safe_load(PARAMS.read_text())

    def missing(defaults, given, where=""):
        for key, value in defaults.items():
            if key in ("presets", "applied", "coverage"):
                continue
            if key not in given:
                yield f"{where}{key}"
            elif isinstance(value, dict) and isinstance(given[key], dict):
                yield from missing(value, given[key], f"{where}{key}.")

    assert list(missing(to_dict(ProjectConfig()), raw)) == []


def test_overrides_are_typed_and_recorded():
    cfg = load_config(PARAMS, overrides=["train.epochs=3", "model.loss_weights.tok=0.5",
                                         "eval.benchmarks=[synthetic_parsing]"])
    assert cfg.train.epochs == 3 and cfg.model.loss_weights.tok == 0.5
    assert cfg.eval.benchmarks == ["synthetic_parsing"]
    assert cfg.applied == ["train.epochs=3", "model.loss_weights.tok=0.5", "eval.benchmarks=[synthetic_parsing]"]


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "unknown config key 'train.epoch'"),
    ("train.epochs=three", "expected an integer"),
    ("masking.strategy=checkerboard", "is not one of"),
    ("model.spatial=yes please", "expected true/false"),
    ("train", "key=value"),
])
def test_bad_overrides_fail_with_a_clear_message(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(PARAMS, overrides=[override])


def test_presets_apply_before_overrides():
    cfg = load_config(PARAMS, preset="mae", overrides=["masking.strategy=block"])
    assert cfg.model.codebook == "off" and cfg.model.replace_ratio == 0.0 and not cfg.model.spatial
    assert cfg.masking.strategy == "block"
    assert cfg.applied == ["preset=mae", "masking.strategy=block"]


def test_every_preset_is_valid_and_ablations_change_one_component():
    base = load_config(PARAMS)
    for name in base.presets:
        cfg = load_config(PARAMS, preset=name)
        assert cfg.applied == [f"preset={name}"]
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config(PARAMS, preset="nope")


def test_unknown_keys_in_a_params_file_are_rejected(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("train:\n  epochs: 2\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="train.learning_rate"):
        load_config(bad)


def test_apply_overrides_leaves_the_original_untouched():
    cfg = load_config(PARAMS)
    new = apply_overrides(cfg, ["seed=7"])
    assert cfg.seed == 0 and new.seed == 7


def test_bare_off_means_the_word_for_literal_fields():
    cfg = load_config(PARAMS, overrides=["model.codebook=off", "model.replace_ratio=0"])
    assert cfg.model.codebook == "off"
