import pytest

from milr_core.config import RunConfig, load_config
from milr_core.errors import MilrError


def test_defaults_follow_the_paper():
    c = RunConfig()
    assert (c.text_ratio, c.image_ratio, c.lr, c.cfg_scale, c.samples, c.strategy) == (0.2, 0.02, 0.03, 5.0, 1, "joint")


@pytest.mark.parametrize(
    "suffix, text",
    [
        (".toml", "steps = 7\nlr = 0.01\n[ignored_section_is_not_allowed]\n"),
        (".toml", "[run]\nsteps = 7\nlr = 0.01\n"),
        (".yaml", "steps: 7\nlr: 0.01\n"),
        (".json", '{"steps": 7, "lr": 0.01}'),
    ],
)
def test_files_in_three_formats(tmp_path, suffix, text):
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    if "ignored" in text:
        with pytest.raises(MilrError, match="ignored_section_is_not_allowed"):
            load_config(path)
        return
    c = load_config(path, steps=None, seed=3)
    assert (c.steps, c.lr, c.seed) == (7, 0.01, 3)


def test_cli_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"steps": 7}')
    assert load_config(path, steps=2).steps == 2


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("threshold", 1.5, "threshold=1.5"),
        ("text_ratio", 0.0, "text_ratio=0.0"),
        ("image_ratio", 2, "image_ratio=2"),
        ("steps", -1, "steps=-1"),
        ("optimizer", "lion", "optimizer='lion'"),
        ("stepz", 3, "stepz=3"),
    ],
)
def test_validation_errors_name_the_field(field, value, words):
    with pytest.raises(MilrError) as info:
        load_config(**{field: value})
    message = str(info.value)
    assert words in message and "\n" not in message


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(MilrError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3")
    with pytest.raises(MilrError, match="not valid TOML"):
        load_config(bad)
    other = tmp_path / "c.ini"
    other.write_text("x")
    with pytest.raises(MilrError, match="must end in .toml"):
        load_config(other)


@pytest.mark.parametrize("field", [name for name, f in RunConfig.model_fields.items() if f.annotation is float])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_float_settings_are_finite_numbers(field, value):
    with pytest.raises(MilrError, match=rf"{field}={value!r}: Input should be a finite number"):
        load_config(**{field: value})


def test_lr_nan_from_the_command_line_gives_the_reason():
    from typer.testing import CliRunner

    from milr_core.cli import app

    result = CliRunner().invoke(app, ["generate", "a cat", "--lr", "nan", "--out", "/nonexistent/never-made"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "lr=nan: Input should be a finite number" in result.output
