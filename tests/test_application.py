"""The application layer as a user meets it: plugin options on the command line and in config files,
recorded in config.json; --version, -h; the strict config-file layout."""

import json
import re

import pytest
import typer
from typer.testing import CliRunner

import milr_core as milr
from milr_core.cli import app
from milr_core.config import load_config, read_options
from milr_core.errors import MilrError

PROMPT = "a photo of a red circle"


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def error_line(result):
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    return line


@pytest.fixture(scope="module")
def shapes():
    return milr.load_backbone("janus-shapes", device="cpu")


def test_a_critic_option_from_the_command_line_is_recorded_and_changes_the_reward(shapes, tmp_path):
    plain = milr.generate(PROMPT, backbone=shapes, critic="shapes-oracle", steps=0, seed=0)
    assert plain.reward == 1.0  # janus-shapes draws this prompt right with seed 0

    out = tmp_path / "run"
    result = invoke("generate", PROMPT, "--steps", "0", "--seed", "0", "--out", str(out), "--json",
                    "--critic-option", "min_area=0.5")
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["critic"]["options"] == {"color_cutoff": 50.0, "min_area": 0.5}
    # the same image, judged with the option: no shape covers half of it
    assert (out / "steps" / "000_00.png").read_bytes() == _png(plain.image)
    assert json.loads(result.output.splitlines()[-1])["best_reward"] == 0.0


def _png(image):
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_options_from_a_config_table_and_the_api(shapes, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text("steps = 0\n\n[critic]\nmin_area = 0.5\n")
    result = milr.generate(PROMPT, backbone=shapes, config=config)
    assert result.reward == 0.0 and result.record.critic.options["min_area"] == 0.5
    # an option given to the call wins over the file's table
    assert milr.generate(PROMPT, backbone=shapes, config=config, critic_options={"min_area": 0.001}).reward == 1.0


def test_bad_options_are_one_line_errors_before_anything_loads(tmp_path):
    line = error_line(invoke("generate", PROMPT, "--critic-option", "nope=1", "--out", str(tmp_path / "a")))
    assert "critic shapes-oracle has no option 'nope'; its options: color_cutoff, min_area" in line
    line = error_line(invoke("generate", PROMPT, "--critic-option", "min_area=lots", "--out", str(tmp_path / "b")))
    assert "invalid critic shapes-oracle options: min_area='lots'" in line
    assert "--critic-option takes KEY=VALUE" in error_line(invoke("generate", PROMPT, "--critic-option", "min_area"))
    line = error_line(invoke("generate", PROMPT, "--backbone-option", "compile=maybe", "--out", str(tmp_path / "c")))
    assert "backbone janus-shapes options: compile='maybe'" in line
    assert not any((tmp_path / name).exists() for name in "abc")


def test_plugins_lists_options():
    result = invoke("plugins", "--options", "shapes-oracle", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["option"]: r for r in json.loads(result.output)}
    assert rows["min_area"]["default"] == "0.002" and rows["min_area"]["kind"] == "critic"
    assert "no backbone or critic named 'nope'" in error_line(invoke("plugins", "--options", "nope"))


def test_version_and_short_help():
    result = invoke("--version")
    assert result.exit_code == 0 and re.fullmatch(r"milr \S+\n", result.output)
    assert result.output.split()[1] == milr.__version__
    group = typer.main.get_command(app)
    for command in ("generate", "bench"):
        # every RunConfig field is a flag of both commands, its default shown
        flags = {opt for p in group.commands[command].params for opt in p.opts}
        assert {f"--{name.replace('_', '-')}" for name in milr.RunConfig.model_fields} <= flags
        text = CliRunner().invoke(app, [command, "-h"], env={"COLUMNS": "200"}).output
        assert "[default: 20]" in text and "adam|sgd" in text


def test_config_file_layout_is_strict(tmp_path):
    for text, error in (("steps = 3\n[run]\nlr = 0.1\n", "`steps` is at the top level beside a \\[run\\] table"),
                        ("[run]\nstepz = 3\n", "stepz"), ("critic = 3\n", "`critic` must be a table")):
        (tmp_path / "bad.toml").write_text(text)
        with pytest.raises(MilrError, match=error):
            load_config(tmp_path / "bad.toml")
    both = tmp_path / "both.toml"
    both.write_text("[run]\nsteps = 3\n[critic]\nmin_area = 0.1\n[backbone]\ncompile = false\n")
    assert load_config(both).steps == 3
    assert read_options(both) == {"backbone": {"compile": False}, "critic": {"min_area": 0.1}}
