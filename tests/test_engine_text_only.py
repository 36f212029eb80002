"""The engine on a backbone with text latents only (a diffusion-decoded model such as BAGEL):
every strategy runs, joint reduces to text, image-only is refused in one line, resume works,
and nothing asks for image tokens, image logits or a decoder (the fake raises if anything does)."""

import io

import pytest
import torch

from fakes import PixelBackbone, ScriptedCritic
from milr_core.config import RunConfig
from milr_core.engine import Milr, SearchState, run_milr
from milr_core.errors import MilrError
from milr_core.interfaces import IMAGE, TEXT, PromptRecord
from milr_core.strategies import Alternate, ImageOnly, Joint, TextOnly, TextThenImage

RECORD = PromptRecord("a photo of a red cube")


def config(**kw):
    return RunConfig(**{"steps": 4, "threshold": 0.99, "seed": 0, "lr": 0.5, **kw})


@pytest.mark.parametrize(
    "strategy, moved",
    [
        (Joint(), [{TEXT}, {TEXT}, {TEXT}, {TEXT}]),
        (Alternate(), [{TEXT}, set(), {TEXT}, set()]),
        (TextThenImage(), [{TEXT}, {TEXT}, set(), set()]),
        (TextOnly(), [{TEXT}, {TEXT}, {TEXT}, {TEXT}]),
    ],
)
def test_every_strategy_runs_on_text_latents_alone(strategy, moved):
    bb = PixelBackbone()
    m = Milr(bb, ScriptedCritic([0.1]), strategy, config())
    result = m.run(RECORD)
    assert set(m.latents) == {TEXT}
    assert [set(s.groups) for s in result.steps[1:]] == moved
    assert len(bb.reason_calls) == 1 + sum(TEXT in g for g in moved)
    assert len(bb.draw_calls) == 5  # a new image at every step, from the backbone's own pixels
    assert all(s.loss is None for s, g in zip(result.steps[1:], moved) if not g)


def test_image_only_is_refused_in_one_line_before_any_work():
    bb = PixelBackbone()
    with pytest.raises(MilrError) as err:
        run_milr(bb, ScriptedCritic([0.1]), ImageOnly(), RECORD, config())
    assert "image-only" in str(err.value) and "fake-pixels" in str(err.value) and "\n" not in str(err.value)
    assert bb.reason_calls == [] and bb.draw_calls == []
    # a baseline (no steps) moves nothing, so any strategy will do
    assert run_milr(PixelBackbone(), ScriptedCritic([0.1]), ImageOnly(), RECORD, config(steps=0)).steps[0].images


def test_a_positive_reward_makes_the_plan_tokens_likelier():
    bb = PixelBackbone()
    m = Milr(bb, ScriptedCritic([0.1]), TextOnly(), config(steps=1, baseline=0.0))
    m.run(RECORD)
    prefix = bb.text_head(bb.hidden_text[: len(m.start[TEXT])]).argmax(-1)
    logp = lambda z: torch.log_softmax(bb.text_head(z), -1).gather(-1, prefix[:, None]).sum()  # noqa: E731
    assert logp(m.latents[TEXT].detach()) > logp(m.start[TEXT])


def test_a_resumed_text_only_run_ends_as_an_uninterrupted_one():
    rewards = [0.1, 0.4, 0.2, 0.3, 0.6]
    cfg = config(steps=4, samples=2)
    whole = run_milr(PixelBackbone(), ScriptedCritic(rewards), Joint(), RECORD, cfg)
    critic, states, kept = ScriptedCritic(rewards), [], []

    def stop(step):
        kept.append(step)
        if step.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_milr(PixelBackbone(), critic, Joint(), RECORD, cfg, on_step=stop, on_state=states.append)
    buf = io.BytesIO()
    torch.save(states[-1].to_dict(), buf)
    buf.seek(0)
    state = SearchState.from_dict(torch.load(buf, weights_only=True))
    assert IMAGE not in state.latents and state.step == 1
    critic.calls = 2 * 2
    resumed = run_milr(PixelBackbone(), critic, Joint(), RECORD, cfg, resume=state, earlier=kept[:2])
    same = lambda steps: [(s.rewards, s.reasoning, [i.tobytes() for i in s.images]) for s in steps]  # noqa: E731
    assert same(resumed.steps) == same(whole.steps)


def test_the_paper_rules_search_a_text_only_backbone():
    # paper prefix lengths are floor(ratio * T) and no search runs when one is 0; a backbone
    # without image latents has no image prefix to be 0, so its text prefix alone decides
    cfg = RunConfig(preset="paper", steps=2, threshold=0.99, seed=0)
    result = run_milr(PixelBackbone(text_len=10), ScriptedCritic([0.1]), TextOnly(), RECORD, cfg)
    assert [s.groups for s in result.steps] == [[], [TEXT], [TEXT]]
    short = run_milr(PixelBackbone(text_len=3), ScriptedCritic([0.1]), TextOnly(), RECORD, cfg)
    assert len(short.steps) == 1  # floor(0.2 * 4) = 0 prefix tokens: nothing to search, as in the reference
