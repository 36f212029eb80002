"""Prompt-set loaders: each benchmark's format, its fields kept, and malformed input named by file and line."""

import json
import types

import pytest

from milr_core.bench.prompts import Benchmark, load_geneval, load_t2i, load_wise
from milr_core.errors import MilrError
from milr_core.interfaces import PromptRecord
from milr_core.plugins import build_registry, hookimpl, registry

GENEVAL = [
    {"tag": "single_object", "include": [{"class": "umbrella", "count": 1}], "prompt": "a photo of an umbrella"},
    {"tag": "counting", "include": [{"class": "cup", "count": 2}], "exclude": [{"class": "cup", "count": 3}],
     "prompt": "a photo of two cups"},
    {"tag": "position", "include": [{"class": "teddy bear", "count": 1},
                                    {"class": "dog", "count": 1, "position": ["right of", 0]}],
     "prompt": "a photo of a dog right of a teddy bear"},
]


def _jsonl(path, objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def test_geneval_keeps_every_field_and_skips_blank_lines(tmp_path):
    path = tmp_path / "meta.jsonl"
    path.write_text(json.dumps(GENEVAL[0]) + "\n\n" + "".join(json.dumps(o) + "\n" for o in GENEVAL[1:]))
    records = load_geneval(path)
    assert [r.to_dict() for r in records] == GENEVAL
    assert records[1].exclude == [{"class": "cup", "count": 3}] and records[2].tag == "position"


@pytest.mark.parametrize(
    "line, problem",
    [
        ('{"tag": "colors", "prompt": "a red car"', "not valid JSON"),
        ('["a red car"]', "expected a JSON object"),
        ('{"tag": "colors"}', "no 'prompt' text"),
        ('{"prompt": "a car", "include": {"class": "car"}}', "'include' must be a list"),
        ('{"prompt": "a car", "include": [{"count": 1}]}', "'include' must be a list of objects with a 'class'"),
        ('{"prompt": "a car", "include": [{"class": "car"}]}', "include[0]: 'count' must be an integer >= 1, not None"),
        ('{"prompt": "a car", "include": [{"class": "car", "count": 0}]}', "'count' must be an integer >= 1, not 0"),
        ('{"prompt": "a car", "include": [{"class": "car", "count": 1.5}]}', "'count' must be an integer >= 1"),
        ('{"prompt": "a car", "include": [{"class": "car", "count": true}]}', "'count' must be an integer >= 1"),
        ('{"prompt": "a car", "include": [{"class": "car", "count": 1}], "exclude": [{"class": "car", "count": -1}]}',
         "exclude[0]: 'count' must be an integer >= 1, not -1"),
        ('{"prompt": "a unicorn", "include": [{"class": "unicorn", "count": 1}]}',
         "include[0]: unknown class 'unicorn' (not one of the 80 classes of this benchmark)"),
        ('{"prompt": "a car", "include": [{"class": "car", "count": 1}, '
         '{"class": "dog", "count": 1, "position": ["behind", 0]}]}',
         "include[1]: unknown relation 'behind'; known: left of, right of, above, below"),
        ('{"prompt": "a car", "include": [{"class": "dog", "count": 1, "position": ["above", 0]}]}',
         "include[0]: position target 0 is not the index of an earlier include clause"),
        ('{"prompt": "a car", "include": [{"class": "dog", "count": 1, "position": "above"}]}',
         "include[0]: 'position' must be [relation, index of an earlier include clause]"),
        ('{"prompt": "' + "a very long prompt " * 200 + '"}', "the prompt is 3,800 characters long; at most 2,000"),
    ],
)
def test_geneval_malformed_line_names_file_and_line(tmp_path, line, problem):
    path = tmp_path / "meta.jsonl"
    path.write_text(json.dumps(GENEVAL[0]) + "\n" + json.dumps(GENEVAL[1]) + "\n\n" + line + "\n")
    with pytest.raises(MilrError) as info:
        load_geneval(path)
    assert str(info.value).startswith(f"{path}:4: ") and problem in str(info.value)
    assert len(str(info.value)) < 300 + len(str(path))  # a long prompt is not echoed


def test_geneval_classes_are_the_benchmarks_own(tmp_path):
    shapes = {"prompt": "two stars", "include": [{"class": "star", "count": 2}]}
    path = _jsonl(tmp_path / "shapes.jsonl", [shapes])
    with pytest.raises(MilrError, match="unknown class 'star'"):
        load_geneval(path)
    assert load_geneval(path, classes=("star", "circle"))[0].include == shapes["include"]
    assert load_geneval(path, classes=None)[0].prompt == "two stars"
    # the shapes benchmark reads GenEval files of shapes-world classes
    assert [r.prompt for r in registry().create("benchmark", "shapes").load(path, None)] == ["two stars"]


BOM, CRLF = "\ufeff", "\r\n"


def test_a_bom_and_crlf_read_as_plain_lf_in_every_format(tmp_path):
    geneval = tmp_path / "meta.jsonl"
    geneval.write_text(BOM + CRLF.join(json.dumps(o) for o in GENEVAL) + CRLF, newline="")
    assert [r.to_dict() for r in load_geneval(geneval)] == GENEVAL
    t2i = tmp_path / "color_val.txt"
    t2i.write_text(BOM + "a red apple" + CRLF + "a blue car" + CRLF, newline="")
    assert [r.prompt for r in load_t2i(t2i)] == ["a red apple", "a blue car"]
    wise = tmp_path / "wise.json"
    items = [{"prompt_id": 1, "Prompt": "the tallest tower in Paris", "Category": "Cultural"}]
    wise.write_text(BOM + json.dumps(items, indent=1).replace("\n", CRLF), newline="")
    assert [r.prompt for r in load_wise(wise)] == ["the tallest tower in Paris"]


def test_long_prompts_are_refused_without_echo_in_every_format(tmp_path):
    long = "a cat " * 1000
    t2i = tmp_path / "color_val.txt"
    t2i.write_text("a red apple\n" + long + "\n")
    with pytest.raises(MilrError, match=r"color_val.txt:2: the prompt is 6,000 characters long; at most 2,000") as info:
        load_t2i(t2i)
    assert "a cat a cat" not in str(info.value)
    wise = tmp_path / "wise.json"
    wise.write_text(json.dumps([{"prompt_id": 1, "Prompt": long, "Category": "Cultural"}]))
    with pytest.raises(MilrError, match=r"wise.json:1: the prompt is 6,000 characters long") as info:
        load_wise(wise)
    assert "a cat a cat" not in str(info.value)


def test_t2i_folder_in_category_order_and_single_file(tmp_path):
    (tmp_path / "spatial_val.txt").write_text("a cat on the left of a dog\na cup near a book")  # no final newline
    (tmp_path / "color_val.txt").write_text("a red apple\na blue bench\n\n")
    (tmp_path / "non_spatial_val.txt").write_text("a man holding a cup.\n")
    records = load_t2i(tmp_path)
    assert [(r.tag, r.prompt) for r in records] == [
        ("color", "a red apple"), ("color", "a blue bench"),
        ("spatial", "a cat on the left of a dog"), ("spatial", "a cup near a book"),
        ("non_spatial", "a man holding a cup."),
    ]
    assert records[3].extra == {"source": "spatial_val.txt", "line": 2}
    one = load_t2i(tmp_path / "spatial_val.txt")
    assert [r.tag for r in one] == ["spatial", "spatial"]


def test_t2i_errors(tmp_path):
    (tmp_path / "shape_val.txt").write_text("a round clock\n  \na square tray\n")
    with pytest.raises(MilrError, match=r"shape_val.txt:2: empty prompt line"):
        load_t2i(tmp_path)
    (tmp_path / "prompts.txt").write_text("a cat\n")
    with pytest.raises(MilrError, match="cannot tell the T2I-CompBench category"):
        load_t2i(tmp_path / "prompts.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MilrError, match="holds no T2I-CompBench prompt file"):
        load_t2i(tmp_path / "empty")


WISE = """[
  {
    "prompt_id": 1,
    "Prompt": "Traditional food of the Mid-Autumn Festival",
    "Explanation": "Mooncakes",
    "Category": "Cultural knowledge",
    "Subcategory": "Festival"
  },
  {"prompt_id": 401, "Prompt": "A maple leaf in autumn", "Explanation": "red leaf",
   "Category": "time", "Subcategory": "Season"}
]
"""


def test_wise_keeps_fields_and_tags_by_wises_scoring_category(tmp_path):
    path = tmp_path / "merge.json"
    path.write_text(WISE)
    first, second = load_wise(path)
    assert first.prompt == "Traditional food of the Mid-Autumn Festival" and first.tag == "CULTURE"
    assert first.extra == {"prompt_id": 1, "Explanation": "Mooncakes", "Category": "Cultural knowledge",
                           "Subcategory": "Festival"}
    assert second.tag == "TIME" and second.extra["prompt_id"] == 401
    lower = tmp_path / "lower.json"
    lower.write_text('[{"prompt_id": 3, "prompt": "a tide pool", "category": "Space"}, '
                     '{"prompt_id": 748, "prompt": "a coral reef", "category": "Ecology"}, '
                     '{"prompt_id": 9, "prompt": "a kite", "category": "Toys"}]')
    # legacy prompt 748 is tagged Ecology; Calculate.py counts it in BIOLOGY (701-800); others stay as given
    assert [r.tag for r in load_wise(lower)] == ["SPACE", "BIOLOGY", "Toys"]


@pytest.mark.parametrize(
    "text, line, problem",
    [
        (WISE.replace('"Prompt": "A maple', '"Text": "A maple'), 9, "WISE prompt without prompt"),
        (WISE.replace('"prompt_id": 401', '"prompt_id": "401"'), 9, "prompt_id must be an integer"),
        (WISE.replace('"Mooncakes",', '"Mooncakes"'), 6, "not valid JSON"),
        (WISE.replace("  },\n  {\"prompt_id\"", "  }\n  {\"prompt_id\""), 9, "expected ',' or ']'"),
        ('{"prompt_id": 1}', 1, "expected a JSON array"),
        ('[\n1\n]', 2, "expected a JSON object"),
    ],
)
def test_wise_malformed_names_the_line(tmp_path, text, line, problem):
    path = tmp_path / "wise.json"
    path.write_text(text)
    with pytest.raises(MilrError) as info:
        load_wise(path)
    assert str(info.value).startswith(f"{path}:{line}: ") and problem in str(info.value), str(info.value)


def test_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(MilrError, match="cannot read prompt file"):
        load_geneval(tmp_path / "nope.jsonl")


def test_registered_benchmarks_and_their_defaults(tmp_path):
    reg = registry()
    assert {"geneval", "t2i-compbench", "wise", "shapes"} <= set(reg.names("benchmark"))
    geneval = reg.create("benchmark", "geneval")
    assert geneval.critic == "geneval"
    with pytest.raises(MilrError, match="geneval needs --prompts"):
        geneval.load(None, None)
    assert len(geneval.load(_jsonl(tmp_path / "m.jsonl", GENEVAL), 2)) == 2


def test_shapes_held_out_set_is_balanced_and_reproducible(tmp_path):
    shapes = registry().create("benchmark", "shapes")
    assert (shapes.critic, shapes.backbone) == ("shapes-oracle", "janus-shapes")
    default = shapes.load(None, None)
    assert len(default) == 200 and default == shapes.load(None, None)
    twelve = shapes.load(None, 12)
    assert [r.tag for r in twelve].count("counting") == 2 and len({r.tag for r in twelve}) == 6
    with pytest.raises(MilrError, match="s.jsonl:1: include.0.: unknown class 'umbrella'"):  # not a shape
        shapes.load(_jsonl(tmp_path / "s.jsonl", GENEVAL), None)


def test_a_plugin_registers_a_benchmark_through_the_hook():
    plugin = types.ModuleType("demo_bench_plugin")

    @hookimpl
    def register_benchmarks(register):
        register("demo", lambda **kw: Benchmark(lambda path, limit: [PromptRecord("a demo")][:limit]), "demo set")

    plugin.register_benchmarks = register_benchmarks
    reg = build_registry(extra_plugins=(plugin,))
    entry = reg.get("benchmark", "demo")
    assert entry.source == "demo_bench_plugin" and entry.description == "demo set"
    assert reg.create("benchmark", "demo").load(None, None)[0].prompt == "a demo"
