from pathlib import Path

import pytest

from bertloop.core.config import ConfigError, load_config, load_orchestration


def test_yaml_then_environment_then_overrides(config_file: Path) -> None:
    config = load_config(
        config_file,
        overrides={"training.learning_rate": 0.001},
        environ={"BERTLOOP_TRAINING__EPOCHS": "3", "BERTLOOP_TRAINING__LEARNING_RATE": "0.5"},
    )
    assert config.training.epochs == 3  # from the environment, over the YAML's 1
    assert config.training.learning_rate == 0.001  # the override beats the environment
    assert config.training.batch_size == 8  # from the YAML
    assert config.validation.max_text_chars == 20_000  # the default


def test_relative_paths_resolve_against_the_yaml_folder(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "bertloop.yaml"
    path.write_text("data: {labels: [a, b], golden_set: golden.csv}\nworkspace: ws\n")
    config = load_config(path, environ={})
    assert config.data.golden_set == tmp_path / "cfg" / "golden.csv"
    assert config.workspace == tmp_path / "cfg" / "ws"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"training.epochs": -1}, "training.epochs: Input should be greater than 0, or 'auto' (got -1)"),
        (
            {"training.precision": "fp8"},
            "training.precision: Input should be 'auto', 'bf16', 'fp16' or 'fp32'",
        ),
        ({"training.epohcs": 2}, "training.epohcs: unknown setting"),
        ({"data.labels": ["a", "a"]}, "labels must be unique; repeated: ['a']"),
        (
            {"validation.min_text_chars": 50, "validation.max_text_chars": 10},
            "must not exceed max_text_chars",
        ),
        ({"gate.max_regression": {"macro_f1": 0}}, "non-inferiority margins must be > 0"),
        ({"gate.confidence": 1.2}, "gate.confidence: Input should be less than 1"),
        (
            {"training.validation_fraction": 0},
            "temperature_scaling needs a validation split: set validation_fraction above 0",
        ),
        (
            {"training.validation_every": 0},
            "training.validation_every: Input should be greater than or equal to 1, or 'auto' or 'epoch' "
            "(got 0)",
        ),
        (
            {"training.validation_every": "often"},
            "training.validation_every: Input should be a valid integer, unable to parse string as an "
            "integer, or 'auto' or 'epoch' (got 'often')",
        ),
        (
            {"training.validation_min_per_class": -1},
            "training.validation_min_per_class: Input should be greater than or equal to 0 (got -1)",
        ),
    ],
)
def test_invalid_values_name_the_field_and_what_is_allowed(
    config_file: Path, overrides: dict, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(config_file, overrides=overrides, environ={})
    assert expected in str(error.value)


def test_a_union_with_auto_is_explained_once(config_file: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(config_file, overrides={"training.epochs": -1}, environ={})
    lines = str(error.value).splitlines()[1:]
    assert lines == ["  - training.epochs: Input should be greater than 0, or 'auto' (got -1)"]


@pytest.mark.parametrize("value", ["auto", "epoch", 500, "500"])
def test_validation_every_takes_auto_epoch_or_a_number_of_steps(config_file: Path, value: object) -> None:
    config = load_config(config_file, overrides={"training.validation_every": value}, environ={})
    assert config.training.validation_every == (500 if value == "500" else value)


def test_missing_required_settings_are_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("training: {epochs: 1}\n")
    with pytest.raises(ConfigError, match=r"data: required setting is missing"):
        load_config(path, environ={})


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_config_hash_changes_with_any_setting(config_file: Path) -> None:
    one = load_config(config_file, environ={})
    two = load_config(config_file, overrides={"training.seed": 7}, environ={})
    assert one.config_hash() == load_config(config_file, environ={}).config_hash()
    assert one.config_hash() != two.config_hash()


def test_orchestration_settings_read_without_data_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("orchestration: {train_queue: gpu-a100, retries: 5}\n")
    settings = load_orchestration({"BERTLOOP_CONFIG": str(path), "BERTLOOP_ORCHESTRATION__TRAIN_POOL": "big"})
    assert (settings.train_queue, settings.retries, settings.train_pool) == ("gpu-a100", 5, "big")
    assert load_orchestration({}).train_queue == "gpu"
