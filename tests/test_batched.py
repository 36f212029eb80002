"""Many searches at once (scheduler.py, calls.py) give exactly what one search at a time gives:
on the tiny random Janus and on janus-shapes, with greedy and with sampled reasoning text."""

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from milr_core.bench.layout import BenchDir
from milr_core.bench.runner import Bench, BenchSettings, mode_config
from milr_core.config import RunConfig
from milr_core.engine import Milr
from milr_core.interfaces import Critic, PromptRecord, Score
from milr_core.plugins import registry
from milr_core.scheduler import run_searches, slots_for
from milr_core.strategies import Alternate, Joint
from milr_janus.backbone import JanusBackbone

from fakes import FakeBackbone

# the tiny Janus draws 16 image tokens: prefixes long enough that floor(ratio * length) is not 0
TINY = {"image_ratio": 0.25, "text_ratio": 0.5}
PROMPTS = ["a photo of a red cube", "two blue balls", "a green cat left of a dog", "three yellow stars"]


class PixelCritic(Critic):
    """A reward that is a fixed function of the pixels (a hash), so equal images score equally
    however they are batched, and searches stop at different steps."""

    name = "pixels"

    def score(self, images, record):
        return [Score(int(hashlib.sha256(im.tobytes()).hexdigest()[:4], 16) / 65536) for im in images]


@pytest.fixture(scope="module")
def tiny(tiny_janus_dir):
    return JanusBackbone.from_pretrained(str(tiny_janus_dir), device="cpu")


def _outputs(result):
    return [(s.step, s.groups, s.reasoning, [im.tobytes() for im in s.images], s.rewards) for s in result.steps]


def _together(backbone, critic, strategy, records, config, slots, pool):
    results = {}

    def start(i):
        return lambda: Milr(backbone, critic, strategy, config.model_copy(update={"seed": i})).search(records[i])

    run_searches(backbone, critic, [(i, start(i)) for i in range(len(records))], slots, results.__setitem__, pool)
    return results


def _compare(backbone, critic, strategy, records, config, pool, slots=3, pixels=0):
    """`pixels`: how far a pixel may move, where pooled VQ decoding (convolutions over a batch of
    another size) rounds differently; the tokens behind the pixels must still be the same."""
    alone = [Milr(backbone, critic, strategy, config.model_copy(update={"seed": i})).run(r) for i, r in enumerate(records)]
    together = _together(backbone, critic, strategy, records, config, slots, pool)
    assert sorted(together) == list(range(len(records)))
    for i, result in enumerate(alone):
        if pixels:
            for a, b in zip(together[i].steps, result.steps):
                assert (a.step, a.groups, a.reasoning, a.rewards) == (b.step, b.groups, b.reasoning, b.rewards)
                for x, y in zip(a.images, b.images):
                    assert np.abs(np.asarray(x, dtype=int) - np.asarray(y, dtype=int)).max() <= pixels
        else:
            assert _outputs(together[i]) == _outputs(result)
        losses = [[math.nan if s.loss is None else s.loss for s in r.steps] for r in (together[i], result)]
        if pool:  # shared calls change the batch's shape, and with it the last bits of the hidden states
            assert losses[0] == pytest.approx(losses[1], rel=1e-4, abs=1e-5, nan_ok=True)
        else:
            assert str(losses[0]) == str(losses[1])
    return alone


@pytest.mark.parametrize("pool", [False, True], ids=["one-call-per-search", "pooled"])
@pytest.mark.parametrize("text_temperature", [0.0, 0.8], ids=["greedy", "sampled"])
def test_tiny_janus_searches_at_once_equal_one_at_a_time(tiny, pool, text_temperature):
    config = RunConfig(steps=2, samples=2, max_reasoning_tokens=6, threshold=0.7, text_temperature=text_temperature,
                       **TINY)
    alone = _compare(tiny, PixelCritic(), Joint(), [PromptRecord(p) for p in PROMPTS], config, pool)
    assert len({len(r.steps) for r in alone}) > 1  # some stopped early: their slots went to the next prompt


def test_first_score_prefixes_searches_at_once_equal_one_at_a_time(tiny):
    # step 0 keeps the latents of twice the image prefix: its draws differ in shape from the others'
    config = RunConfig(steps=2, max_reasoning_tokens=6, threshold=0.7, prefix_schedule="first-score", **TINY)
    _compare(tiny, PixelCritic(), Joint(), [PromptRecord(p) for p in PROMPTS[:3]], config, pool=True, slots=2)


def test_greedy_images_and_alternating_strategy(tiny):
    config = RunConfig(steps=2, max_reasoning_tokens=6, threshold=1.0, temperature=1.0, text_temperature=0.0, **TINY,
                       continuation_temperature=0.0, strategy="alt")
    _compare(tiny, PixelCritic(), Alternate(), [PromptRecord(p) for p in PROMPTS[:3]], config, pool=True, slots=2)


def test_janus_shapes_with_its_oracle_searches_at_once_equal_one_at_a_time():
    shapes = registry().backbone("janus-shapes", device="cpu")
    oracle = registry().get("critic", "shapes-oracle").factory(backbone=shapes)
    records = registry().create("benchmark", "shapes").load(None, 2)
    config = RunConfig(steps=1, samples=1, threshold=1.0, max_reasoning_tokens=8)
    _compare(shapes, oracle, Joint(), records, config, pool=True, pixels=2)


def test_scheduler_keeps_at_most_slots_searches_and_refills_them():
    bb = FakeBackbone(rows=8)
    config = RunConfig(steps=4, samples=2, max_reasoning_tokens=4, threshold=0.8)
    records = [PromptRecord(f"prompt {i}") for i in range(5)]
    results = _together(bb, PixelCritic(), Joint(), records, config, slots=2, pool=True)
    assert sorted(results) == list(range(5))
    assert max(len(jobs) for jobs in bb.draw_many_rows) == 2  # two searches shared a call, never three
    # every image a search made went through a shared call: the draws are all its images
    assert sum(map(sum, bb.draw_many_rows)) == sum(r.images_generated for r in results.values())


def test_slots_follow_the_rows_a_draw_holds():
    assert slots_for(FakeBackbone(rows=8), 2) == 4
    assert slots_for(FakeBackbone(rows=8), 16) == 1


def _bench(root, backbone, critic, slots, text_temperature):
    records = registry().create("benchmark", "shapes").load(None, 3)
    run = mode_config("milr", RunConfig(steps=1, max_reasoning_tokens=6, threshold=0.473, **TINY,
                                        text_temperature=text_temperature), None)
    settings = BenchSettings(benchmark="shapes", prompts=len(records), prompts_sha256="x", mode="milr",
                             images_per_prompt=2, backbone="tiny", critic=critic.name, run=run)
    Bench(settings, records, BenchDir(root), backbone, critic, Joint(), slots=slots).run_prompts(list(range(3)))
    out = {}
    for path in sorted(Path(root).rglob("*")):
        if path.suffix == ".png":
            out[str(path.relative_to(root))] = path.read_bytes()
        elif path.name == "trace.jsonl":
            lines = [json.loads(x) for x in path.read_text().splitlines()]
            out[str(path.relative_to(root))] = [{k: v for k, v in x.items() if k != "seconds"} for x in lines]
        elif path.name == "result.json":
            out[str(path.relative_to(root))] = {k: v for k, v in json.loads(path.read_text()).items() if k != "seconds"}
    return out


@pytest.mark.parametrize("text_temperature", [0.0, 0.8], ids=["greedy", "sampled"])
def test_bench_on_the_cpu_writes_byte_identical_files_at_any_concurrency(tiny, tmp_path, text_temperature):
    critic = registry().get("critic", "self").factory(backbone=tiny)
    one = _bench(tmp_path / "one", tiny, critic, 1, text_temperature)
    many = _bench(tmp_path / "many", tiny, critic, 8, text_temperature)
    assert len([k for k in one if k.endswith(".png")]) == 6 and one == many


def test_out_of_memory_redraws_everything_with_half_the_rows():
    bb = FakeBackbone(rows=8, oom_above=2)
    config = RunConfig(steps=1, samples=2, max_reasoning_tokens=4, threshold=1.0)
    records = [PromptRecord(f"prompt {i}") for i in range(3)]
    alone = [Milr(FakeBackbone(rows=8), PixelCritic(), Joint(), config.model_copy(update={"seed": i})).run(r)
             for i, r in enumerate(records)]
    together = _together(bb, PixelCritic(), Joint(), records, config, slots=3, pool=True)
    for i in range(3):
        assert _outputs(together[i]) == _outputs(alone[i])
    assert max(map(sum, bb.draw_many_rows)) == 2
