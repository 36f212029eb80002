"""Every critic the installed plugins register x every command, through the real CLI on stand-ins.

Commands: `milr generate`, `milr bench` in each mode, `milr eval` on a bench folder. Stand-ins: the
tiny random Janus as backbone; random-weight Mask2Former, GroundingDINO, BLIP and DPT saved to folders
and named by the critics' own environment variables; a tiny open_clip checkpoint file passed to the CLIP
critics' factories; the VLM judges against an OpenAI-compatible server on 127.0.0.1; `unified-local` on
a tiny random Qwen2.5-VL. A critic registered later without a stand-in here fails its cells.

Then what the engine does with a bad critic answer, through `generate` and `bench`.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass
from functools import partial

import pytest
from test_cli import one_line_error
from test_judges import JudgeServer, answer
from typer.testing import CliRunner

from milr_core.cli import app
from milr_core.interfaces import Critic, Score
from milr_core.plugins import Entry, registry

pytestmark = pytest.mark.matrix

LIMIT = 2  # prompts per bench run
SETTINGS = "max_reasoning_tokens = 4\nprefix_rule = \"ceil\"\n"  # the random Janus never stops writing on its own

# What each judge's stand-in server answers, and the reward that answer must become.
JUDGES = {
    "unified": ("Final Score: 4", (4 - 1) / (5 - 1)),  # UnifiedReward's 1..5 scale
    "gpt-4o": ("Final Score: 7", 7 / 10),  # GPT-4o's 0..10 scale
    "wise": ("Consistency: 2\nRealism: 1\nAesthetic Quality: 1", (0.7 * 2 + 0.2 * 1 + 0.1 * 1) / 2),  # WiScore
    "wise-verified": ("Score: 1", 1.0),  # WISE_Verified's 0/1
}
# WISE's critics read their judge messages from a WISE checkout; this stand-in builds them as WISE does
WISE_SCRIPT = (
    "def build_evaluation_messages(prompt_data, image_base64):\n"
    "    return [{'role': 'system', 'content': [{'type': 'text', 'text': 'Judge.'}]},\n"
    "            {'role': 'user', 'content': [{'type': 'text', 'text': f\"PROMPT: {prompt_data['Prompt']}\"}]}]\n"
)


@dataclass(frozen=True)
class StandIn:
    """How a critic is exercised: the prompt set its bench and eval cells read, the prompt its
    generate cell gives (None: the critic needs benchmark metadata, so generate must refuse in one
    line), whether it is an oracle (its scores carry `correct`), and the reward it must give (judges)."""

    prompts: str
    generate: str | None
    oracle: bool = False
    reward: float | None = None
    nan: bool = False  # every answer unreadable: rewards are null
    eval_backbone: bool = False  # `milr eval` needs --backbone


STAND_INS = {
    "shapes-oracle": StandIn("shapes", "a photo of two red circles", oracle=True),
    "scenes-oracle": StandIn("scenes", "a photo of two red circles", oracle=True),
    "geneval": StandIn("geneval", None, oracle=True),
    "mixed": StandIn("geneval", "a photo of a red dog"),
    "clipscore": StandIn("geneval", "a photo of a dog"),
    "self": StandIn("geneval", "a photo of a dog", eval_backbone=True),
    "unified": StandIn("geneval", "a photo of a dog", reward=JUDGES["unified"][1]),
    "gpt-4o": StandIn("geneval", "a photo of a dog", reward=JUDGES["gpt-4o"][1]),
    # the tiny judge's vocabulary has no digits: it never answers with a score
    "unified-local": StandIn("geneval", "a photo of a dog", nan=True),
    "wise": StandIn("wise", "a photo of a dog", reward=JUDGES["wise"][1]),
    "wise-verified": StandIn("wise", "a photo of a dog", reward=JUDGES["wise-verified"][1]),
    "t2i-clip": StandIn("t2i-non_spatial", "a dog chasing a cat"),
    "t2i-blip-vqa": StandIn("t2i-color", "a red book and a yellow vase"),
    "t2i-spatial": StandIn("t2i-spatial", "a dog on the left of a cat"),
    "t2i-numeracy": StandIn("t2i-numeracy", "two dogs and one cat"),
    "t2i-3d-spatial": StandIn("t2i-3d_spatial", "a dog in front of a cat"),
    "t2i-compbench": StandIn("t2i-color", None),  # scores by the record's category, which a bare prompt lacks
}

GENEVAL = [
    {"tag": "color_attr", "include": [{"class": "cat", "count": 1, "color": "red"},
                                      {"class": "bench", "count": 1, "color": "blue"}],
     "prompt": "a photo of a red cat and a blue bench"},
    {"tag": "position", "include": [{"class": "dog", "count": 1}, {"class": "cat", "count": 1,
                                                                   "position": ["left of", 0]}],
     "prompt": "a photo of a cat left of a dog"},
]  # fmt: skip
WISE = [
    {"prompt_id": 1, "Prompt": "the flower of the Netherlands", "Explanation": "a tulip", "Category": "Cultural",
     "Subcategory": "flowers"},
    {"prompt_id": 2, "Prompt": "ice left in the sun at noon", "Explanation": "a puddle of water",
     "Category": "Natural science", "Subcategory": "physics"},
]  # fmt: skip
# name: (benchmark, file its prompts are read from, the file's text); shapes uses its built-in set
PROMPT_SETS = {
    "shapes": ("shapes", None, None),
    "scenes": ("scenes", None, None),
    "geneval": ("geneval", "geneval.jsonl", "".join(json.dumps(r) + "\n" for r in GENEVAL)),
    "wise": ("wise", "wise.json", json.dumps(WISE)),
    "t2i-color": ("t2i-compbench", "color_val.txt", "a red book and a yellow vase\na green bench and a blue car\n"),
    "t2i-spatial": ("t2i-compbench", "spatial_val.txt", "a dog on the left of a cat\na car on the top of a bench\n"),
    "t2i-numeracy": ("t2i-compbench", "numeracy_val.txt", "two dogs and one cat\nthree cars\n"),
    "t2i-3d_spatial": ("t2i-compbench", "3d_spatial_val.txt", "a dog in front of a cat\na car behind a bench\n"),
    "t2i-non_spatial": ("t2i-compbench", "non_spatial_val.txt", "a dog chasing a cat\na man reading a book\n"),
}

MODES = {"baseline": [], "best-of-n": ["--n", "2"], "milr": ["--steps", "1"], "resample": ["--steps", "1"]}
COMMANDS = ("generate", *(f"bench-{mode}" for mode in MODES), "eval")

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models spend their time in thread hand-offs: on a shared 2-core machine one thread is ~10x faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def judge_script(n, body, headers):
    return answer(JUDGES[body["model"]][0])


@pytest.fixture(scope="module")
def judge_server():
    server = JudgeServer()
    server.script = judge_script
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory, tiny_judge, judge_server, one_thread):
    """Every critic's weights and server replaced by stand-ins; yields the folder holding the prompt files."""
    from milr_rewards_geneval import random_models

    root = tmp_path_factory.mktemp("stand-ins")
    env = {"MILR_CACHE": root / "cache", "MILR_UNIFIED_LOCAL_MODEL": tiny_judge, "MILR_UNIFIED_LOCAL_MAX_TOKENS": 4}
    for variable, build in (("MILR_GENEVAL_DETECTOR", random_models.mask2former),
                            ("MILR_GROUNDING_DINO", random_models.grounding_dino),
                            ("MILR_MIXED_VQA", random_models.blip_vqa), ("MILR_T2I_VQA", random_models.blip_vqa),
                            ("MILR_T2I_DEPTH", random_models.dpt)):  # fmt: skip
        model, processor = build(small=True)
        folder = root / variable.lower()
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        env[variable] = folder
    import torch

    clip = root / "tiny-clip.pt"
    torch.save(random_models.open_clip(None)[0].state_dict(), clip)  # also makes its architecture known
    for _, file, text in PROMPT_SETS.values():
        if file:
            (root / file).write_text(text)

    for name, prefix in (("unified", "MILR_UNIFIED"), ("gpt-4o", "MILR_GPT4O"), ("wise", "MILR_WISE"),
                         ("wise-verified", "MILR_WISE_VERIFIED")):  # fmt: skip
        # no answer cache: every image the server sees is one the command scored
        env |= {f"{prefix}_BASE_URL": judge_server.url, f"{prefix}_MODEL": name, f"{prefix}_CACHE_DIR": "off"}
    for script in ("WISE_legacy/gpt_eval.py", "vllm_eval.py"):
        (root / "WISE" / script).parent.mkdir(parents=True, exist_ok=True)
        (root / "WISE" / script).write_text(WISE_SCRIPT)
    env["MILR_WISE_REPO"] = root / "WISE"

    critics = registry().entries["critic"]
    with pytest.MonkeyPatch.context() as mp:
        for variable in list(os.environ):  # the judges' settings of whoever runs the tests
            if variable.startswith(("OPENAI_", "MILR_UNIFIED_", "MILR_GPT4O_", "MILR_WISE_")):
                mp.delenv(variable)
        for variable, value in env.items():
            mp.setenv(variable, str(value))
        # an open_clip architecture has no environment variable: the factories take it as a keyword
        arch = random_models.SMALL_CLIP
        for name, options in (("geneval", dict(clip_arch=arch, clip_weights=clip)),
                              ("clipscore", dict(arch=arch, weights=clip)), ("t2i-clip", dict(arch=arch, weights=clip))):
            mp.setattr(critics[name], "factory", partial(critics[name].factory, **options))
        yield root


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    path = tmp_path_factory.mktemp("settings") / "small.toml"
    path.write_text(SETTINGS)
    return path


def bench_args(root, prompt_set, mode, critic, backbone, settings, out):
    benchmark, file, _ = PROMPT_SETS[prompt_set]
    prompts = ["--prompts", root / file] if file else []
    return ["bench", benchmark, *prompts, "--limit", LIMIT, "--mode", mode, *MODES[mode], "--critic", critic,
            "--backbone", backbone, "--config", settings, "--out", out, "--json"]


@pytest.fixture(scope="module")
def bench_folder(stand_ins, tiny_janus_dir, settings, tmp_path_factory):
    """A finished baseline bench folder of a prompt set (made once, guided by `self`), for the eval cells."""
    made = {}

    def make(prompt_set):
        if prompt_set not in made:
            out = tmp_path_factory.mktemp("eval-source") / prompt_set
            done = invoke(*bench_args(stand_ins, prompt_set, "baseline", "self", tiny_janus_dir, settings, out))
            assert done.exit_code == 0, done.output
            made[prompt_set] = out
        return made[prompt_set]

    return make


def check_reward(reward, stand_in: StandIn):
    if stand_in.nan:
        assert reward is None
    elif stand_in.reward is not None:
        assert reward == pytest.approx(stand_in.reward)
    else:
        assert reward is None or 0.0 <= reward <= 1.0


def check_samples(samples, stand_in: StandIn):
    assert samples
    for sample in samples:
        check_reward(sample["reward"], stand_in)
        assert isinstance(sample["correct"], bool)
        if stand_in.oracle:
            assert sample["judged_by"] == "critic"
        else:
            assert sample["judged_by"].startswith("reward > ")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("critic", registry().names("critic"))
def test_critic_through_command(critic, command, stand_ins, judge_server, tiny_janus_dir, settings, bench_folder,
                                tmp_path):
    if critic not in STAND_INS:
        pytest.fail(f"critic {critic!r} is registered but has no stand-in in tests/test_matrix.py: add one")
    stand_in = STAND_INS[critic]
    out = tmp_path / "out"
    asked = len(judge_server.requests)
    if command == "generate":
        args = ["--backbone", tiny_janus_dir, "--critic", critic, "--steps", 1, "--config", settings, "--out", out]
        if stand_in.generate is None:  # a bare prompt lacks the metadata this critic reads
            line = one_line_error(invoke("generate", "a photo of a dog", *args, "--json"))
            assert critic in line
            assert not (out / "final.json").exists() and not list(out.rglob("*.png"))
            return
        done = invoke("generate", stand_in.generate, *args, "--json")
        assert done.exit_code == 0, done.output
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        final = json.loads((out / "final.json").read_text())
        assert (out / "final.png").is_file()
        check_reward(final["reward"], stand_in)
        assert isinstance(final["correct"], bool) if stand_in.oracle else final["correct"] is None
        assert 1 <= len(summary["rewards"]) <= 2  # step 0, and one step of search unless step 0 was good enough
        for rewards in summary["rewards"]:
            for reward in rewards:
                check_reward(reward, stand_in)
        scored = final["images_generated"]
    elif command == "eval":
        folder = bench_folder(stand_in.prompts)
        backbone = ["--backbone", tiny_janus_dir] if stand_in.eval_backbone else []
        done = invoke("eval", folder, "--critic", critic, *backbone, "--json")
        assert done.exit_code == 0, done.output
        results = json.loads((folder / f"eval-{critic}.json").read_text())["results"]
        assert len(results) == LIMIT
        for result in results:
            check_samples(result["samples"], stand_in)
        scored = sum(len(result["samples"]) for result in results)
    else:
        mode = command.removeprefix("bench-")
        done = invoke(*bench_args(stand_ins, stand_in.prompts, mode, critic, tiny_janus_dir, settings, out))
        assert done.exit_code == 0, done.output
        assert json.loads((out / "summary.json").read_text())["finished"] == LIMIT
        scored = 0
        for index in range(LIMIT):
            result = json.loads((out / f"{index:05d}" / "result.json").read_text())
            check_samples(result["samples"], stand_in)
            sample = result["samples"][0]
            assert (out / f"{index:05d}" / sample["file"]).is_file()
            # K = 1 with one image per step: the search stops after step 0 when its image is good enough
            assert sample["images"] in {"baseline": (1,), "best-of-n": (2,)}.get(mode, (1, 2))
            scored += sample["images"]
    if critic in JUDGES:  # each image was scored once: correctness comes from that score, not a second request
        assert len(judge_server.requests) - asked == scored


def test_every_stand_in_is_a_registered_critic():
    assert sorted(STAND_INS) == registry().names("critic")


# ---- what the engine does with a critic's answer --------------------------------------------------


class Scripted(Critic):
    """Answers every call with `reply(number of images)`."""

    name = "scripted"

    def __init__(self, reply):
        self.reply = reply

    def score(self, images, record):
        return self.reply(len(images))


def explode(n):
    raise RuntimeError("detector exploded")


# what the critic answers, and what the error line must show of it
BAD_ANSWERS = {
    "too-many": (lambda n: [Score(0.5)] * (n + 1), "returned 2 scores for 1 images"),
    "none": (lambda n: None, "returned None"),
    "not-a-score": (lambda n: [0.5] * n, "returned 0.5"),
    "above-one": (lambda n: [Score(5.0)] * n, "reward 5.0"),
    "negative": (lambda n: [Score(-3.0)] * n, "reward -3.0"),
    "infinite": (lambda n: [Score(math.inf)] * n, "reward inf"),
    "raises": (explode, "RuntimeError: detector exploded"),
}


@pytest.fixture
def scripted(monkeypatch, one_thread):
    """Registers the critic `scripted`, answering with the function given to the returned setter."""

    def use(reply):
        factory = lambda backbone=None, **kwargs: Scripted(reply)  # noqa: E731
        monkeypatch.setitem(registry().entries["critic"], "scripted", Entry("critic", "scripted", factory, "", "tests"))

    return use


def run_command(command, out, tiny_janus_dir, settings, as_json=True):
    common = ["--critic", "scripted", "--backbone", tiny_janus_dir, "--config", settings, "--out", out, "--steps", 1,
              *(["--json"] if as_json else [])]
    if command == "generate":
        return invoke("generate", "a photo of two red circles", *common)
    return invoke("bench", "shapes", "--limit", LIMIT, *common)


def only_whole_files(out):
    """No temporary or partly written files: every JSON file on disk parses."""
    assert not list(out.rglob("*.tmp"))
    for path in out.rglob("*.json"):
        json.loads(path.read_text())


@pytest.mark.parametrize("command", ["generate", "bench"])
@pytest.mark.parametrize("case", BAD_ANSWERS)
def test_a_bad_critic_answer_is_one_line_naming_the_critic(case, command, scripted, tiny_janus_dir, settings, tmp_path):
    reply, shown = BAD_ANSWERS[case]
    scripted(reply)
    out = tmp_path / "out"
    line = one_line_error(run_command(command, out, tiny_janus_dir, settings))
    assert "critic 'scripted'" in line and shown in line
    only_whole_files(out)
    assert not list(out.rglob("*.png"))  # the images of a step count only once the critic scored them
    assert not (out / "final.json").exists() and not (out / "summary.json").exists()
    assert not list(out.rglob("result.json"))


@pytest.mark.parametrize("command", ["generate", "bench"])
def test_without_json_the_error_is_still_the_only_line(command, scripted, tiny_janus_dir, settings, tmp_path):
    scripted(explode)
    line = one_line_error(run_command(command, tmp_path / "out", tiny_janus_dir, settings, as_json=False))
    assert "critic 'scripted'" in line


@pytest.mark.parametrize("command", ["generate", "bench"])
def test_nan_is_skipped_and_logged(command, scripted, tiny_janus_dir, settings, tmp_path, caplog):
    scripted(lambda n: [Score(math.nan, "no answer")] * n)
    out = tmp_path / "out"
    done = run_command(command, out, tiny_janus_dir, settings)
    assert done.exit_code == 0, done.output
    only_whole_files(out)
    assert any("scripted returned NaN" in r.getMessage() for r in caplog.records)
    if command == "generate":
        assert json.loads((out / "final.json").read_text())["reward"] is None
        trace = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
        assert all(r is None for step in trace for r in step["rewards"])
        assert all(d.startswith("NaN reward (skipped)") for step in trace for d in step["details"])
    else:
        for index in range(LIMIT):
            result = json.loads((out / f"{index:05d}" / "result.json").read_text())
            assert [s["reward"] for s in result["samples"]] == [None]
            assert result["samples"][0]["correct"] is False
