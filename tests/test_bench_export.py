"""`milr export`: a bench folder's images under T2I-CompBench's and WISE's own file names."""

import json

import pytest
from PIL import Image

from milr_core.bench.export import export_folder
from milr_core.bench.layout import BenchDir
from milr_core.bench.runner import Bench, BenchSettings, mode_config
from milr_core.config import RunConfig
from milr_core.errors import MilrError
from milr_core.interfaces import PromptRecord
from milr_core.strategies import Joint

from fakes import FakeBackbone, ScriptedCritic


def _folder(tmp_path, records, per_prompt, finish=None):
    cfg = mode_config("baseline", RunConfig(max_reasoning_tokens=4), None)
    settings = BenchSettings(benchmark="demo", prompts=len(records), prompts_sha256="x", mode="baseline", n=None,
                             images_per_prompt=per_prompt, backbone="fake", critic="scripted", run=cfg)
    root = tmp_path / "bench"
    bench = Bench(settings, records, BenchDir(root), FakeBackbone(), ScriptedCritic([0.5]), Joint())
    for i in range(len(records) if finish is None else finish):
        bench.run_prompt(i)
    (root / "config.json").write_text(json.dumps({"settings": settings.model_dump()}))
    return root


def test_t2i_compbench_names_count_over_each_category_file(tmp_path):
    records = [
        PromptRecord("a red book and a blue cup", "color", extra={"source": "color_val.txt", "line": 1}),
        PromptRecord("a green bench", "color", extra={"source": "color_val.txt", "line": 2}),
        PromptRecord("a cat left of a dog", "spatial", extra={"source": "spatial_val.txt", "line": 1}),
    ]
    root = _folder(tmp_path, records, per_prompt=2)
    counts = export_folder(root, "t2i-compbench", tmp_path / "t2i")
    assert counts == {"images": 6, "prompts": 3, "unfinished": 0}
    names = sorted(str(p.relative_to(tmp_path / "t2i")) for p in (tmp_path / "t2i").rglob("*.png"))
    assert names == [
        "color/samples/a green bench_000002.png",
        "color/samples/a green bench_000003.png",
        "color/samples/a red book and a blue cup_000000.png",
        "color/samples/a red book and a blue cup_000001.png",
        "spatial/samples/a cat left of a dog_000000.png",
        "spatial/samples/a cat left of a dog_000001.png",
    ]
    # the evaluators' own parsing: prompt before the first "_", id after the last
    name = "a green bench_000003.png"
    assert name.split("_")[0] == "a green bench" and int(name.rsplit("_", 1)[1][:-4]) == 3
    same = Image.open(tmp_path / "t2i" / "spatial/samples/a cat left of a dog_000001.png")
    assert same.tobytes() == Image.open(root / "00002" / "samples" / "0001.png").tobytes()


def test_wise_names_are_prompt_ids_one_image_each(tmp_path):
    records = [PromptRecord("the tallest mountain", "Space", extra={"prompt_id": 521}),
               PromptRecord("ice at 10 degrees C", "Physical Knowledge", extra={"prompt_id": 777})]
    root = _folder(tmp_path, records, per_prompt=2, finish=1)
    counts = export_folder(root, "wise", tmp_path / "wise")
    assert counts == {"images": 1, "prompts": 1, "unfinished": 1}
    assert [p.name for p in (tmp_path / "wise").iterdir()] == ["521.png"]


def test_export_refuses_what_it_cannot_name(tmp_path):
    root = _folder(tmp_path, [PromptRecord("a photo of a cat", "single_object")], per_prompt=1)
    with pytest.raises(MilrError, match="no prompt_id: export wise takes folders of `milr bench wise`"):
        export_folder(root, "wise", tmp_path / "w")
    with pytest.raises(MilrError, match="no line number of a T2I-CompBench prompt file"):
        export_folder(root, "t2i-compbench", tmp_path / "t")
    with pytest.raises(MilrError, match="unknown export format 'parti'; known formats: t2i-compbench, wise"):
        export_folder(root, "parti", tmp_path / "p")
    with pytest.raises(MilrError, match="is not a bench folder: it has no config.json"):
        export_folder(tmp_path, "wise", tmp_path / "p")
    bad = _folder(tmp_path / "b", [PromptRecord("a_b", "color", extra={"line": 1})], per_prompt=1)
    with pytest.raises(MilrError, match="holds '_' or '/'"):
        export_folder(bad, "t2i-compbench", tmp_path / "t")


def test_the_export_command_reports_counts_or_one_error_line(tmp_path):
    from typer.testing import CliRunner

    from milr_core.cli import app

    records = [PromptRecord("the tallest mountain", "Space", extra={"prompt_id": 521})]
    root = _folder(tmp_path, records, per_prompt=1)
    run = CliRunner().invoke(app, ["export", str(root), "--format", "wise", "--out", str(tmp_path / "wise")])
    assert run.exit_code == 0 and run.output.strip() == f"1 images of 1 prompts in {tmp_path / 'wise'}"
    run = CliRunner().invoke(app, ["export", str(root), "--format", "t2i-compbench", "--out", str(tmp_path / "t")])
    lines = [line for line in run.output.splitlines() if line.strip()]
    assert run.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: 'the tallest mountain' has no line")


def test_export_writes_into_an_empty_folder_or_refuses(tmp_path):
    records = [PromptRecord("a green bench", "color", extra={"source": "color_val.txt", "line": 1})]
    root = _folder(tmp_path, records, per_prompt=2)
    dest = tmp_path / "t2i"
    export_folder(root, "t2i-compbench", dest)
    old = dest / "color/samples/an old prompt_000007.png"  # what an earlier export with other prompts left
    old.write_bytes(b"old")
    with pytest.raises(MilrError, match="is not empty; choose a new folder, or pass --overwrite to empty it first"):
        export_folder(root, "t2i-compbench", dest)
    assert export_folder(root, "t2i-compbench", dest, overwrite=True)["images"] == 2
    assert sorted(p.name for p in dest.rglob("*.png")) == ["a green bench_000000.png", "a green bench_000001.png"]
    with pytest.raises(MilrError, match="would empty .* which holds the bench folder"):
        export_folder(root, "t2i-compbench", tmp_path, overwrite=True)
    assert (root / "config.json").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(MilrError, match="is a file; export writes into a folder"):
        export_folder(root, "t2i-compbench", tmp_path / "file")


def test_a_failed_export_writes_nothing(tmp_path):
    records = [PromptRecord("fine", "color", extra={"line": 1}), PromptRecord("not_fine", "color", extra={"line": 2})]
    root = _folder(tmp_path, records, per_prompt=1)
    with pytest.raises(MilrError, match="holds '_' or '/'"):
        export_folder(root, "t2i-compbench", tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_the_export_command_takes_overwrite(tmp_path):
    from typer.testing import CliRunner

    from milr_core.cli import app

    root = _folder(tmp_path, [PromptRecord("the tallest mountain", "Space", extra={"prompt_id": 521})], per_prompt=1)
    (tmp_path / "wise").mkdir()
    (tmp_path / "wise" / "9.png").write_bytes(b"old")
    args = ["export", str(root), "--format", "wise", "--out", str(tmp_path / "wise")]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 2 and run.output.startswith("error:") and "--overwrite" in run.output
    run = CliRunner().invoke(app, [*args, "--overwrite"])
    assert run.exit_code == 0 and sorted(p.name for p in (tmp_path / "wise").iterdir()) == ["521.png"]
