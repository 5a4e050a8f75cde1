from pathlib import Path

import pandas as pd
import pytest

from bertloop.pipeline.cli import EXIT_REJECTED, EXIT_USAGE, main


def test_help_lists_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in (
        "run",
        "ingest",
        "validate",
        "version",
        "train",
        "evaluate",
        "register",
        "models",
        "config",
    ):
        assert command in out
    assert "BERTLOOP_TRAINING__EPOCHS" in out


def test_invalid_override_names_the_field(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_file), "--set", "training.batch_size=0", "config"]) == EXIT_USAGE
    assert (
        "training.batch_size: Input should be greater than or equal to 1, or 'auto' (got 0)"
        in capsys.readouterr().err
    )


def test_config_shows_the_overridden_value(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_file), "--set", "training.seed=9", "config"]) == 0
    assert '"seed": 9' in capsys.readouterr().out


def test_rejected_batch_exits_3_with_the_reasons(
    config_file: Path, tmp_path: Path, golden_frame: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "leaky.csv"
    golden_frame.to_csv(bad, index=False)
    assert main(["--config", str(config_file), "run", str(bad), "--run-key", "k"]) == EXIT_REJECTED
    err = capsys.readouterr().err
    assert "rejected" in err and "30 of 30 rows (100.0%) fail row-level checks" in err
    assert "leaked: the text is in the golden set" in err


def test_step_out_of_order_exits_2(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_file), "train", "--run-key", "nothing-yet"]) == EXIT_USAGE
    assert "run `bertloop ingest --run-key nothing-yet` first" in capsys.readouterr().err
