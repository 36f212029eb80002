import io
import math

import pytest
import torch

from fakes import FakeBackbone, ScriptedCritic
from milr_core.config import RunConfig
from milr_core.engine import Milr, SearchState, advantages, log_prob, prefix_length, run_milr
from milr_core.interfaces import IMAGE, TEXT, PromptRecord
from milr_core.strategies import Alternate, ImageOnly, Joint, TextOnly, TextThenImage

RECORD = PromptRecord("a photo of a red cube")


def config(**kw):
    # the engine's mechanics under the settings these tests were written for: REINFORCE on the drawn
    # prefix, ceil prefix lengths, the best image returned (test_paper_preset.py covers the others)
    classic = {"loss_target": "drawn", "prefix_rule": "ceil", "return_image": "best", "reward_shaping": "fraction",
               "ablations": "milr", "max_reasoning_tokens": 256, "continuation_tokens": None}
    return RunConfig(**{"steps": 4, "threshold": 0.99, "seed": 0, "lr": 0.5, **classic, **kw})


def test_prefix_lengths_follow_the_paper():
    assert prefix_length(0.2, 10) == 2
    assert prefix_length(0.2, 11) == 3  # ceil
    assert prefix_length(0.02, 576) == 12  # ceil(11.52)
    assert prefix_length(0.2, 0) == 0
    assert prefix_length(0.2 * 1.5, 10) == 3  # 3.0000000000000004: no extra position from float rounding


def test_latents_are_the_hidden_states_of_the_first_tokens():
    bb = FakeBackbone(text_len=10)
    m = Milr(bb, ScriptedCritic([0.0]), Joint(), config(steps=0))
    m.run(RECORD)
    assert m.start[TEXT].shape == (2, 8)
    assert torch.equal(m.start[TEXT], bb.hidden_text[:2])
    assert m.start[IMAGE].shape == (1, 2, 8)  # ceil(0.02 * 50) positions, both CFG rows
    assert torch.equal(m.start[IMAGE], bb.hidden_image[:1])


def test_leave_one_out_and_fixed_baselines():
    assert torch.allclose(advantages(torch.tensor([1.0, 0.0, 0.0]), 1.0), torch.tensor([1.0, -0.5, -0.5]))
    assert torch.allclose(advantages(torch.tensor([0.25]), 1.0), torch.tensor([-0.75]))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_update_direction_follows_the_advantage(sign):
    bb = FakeBackbone()
    cfg = config(steps=0, baseline=0.5)
    m = Milr(bb, ScriptedCritic([0.0]), Joint(), cfg)
    m.run(RECORD)
    prefixes = {TEXT: torch.tensor([[3, 4]]), IMAGE: torch.tensor([[5]])}
    before = {g: log_prob(m.policy_logits(g, m.latents[g]), prefixes[g]).item() for g in (TEXT, IMAGE)}
    opts = {g: torch.optim.Adam([z], lr=0.1) for g, z in m.latents.items()}
    reward = 0.5 + 0.5 * sign  # advantage +0.5 or -0.5
    m._update(m.latents, m.start, prefixes, opts, {TEXT, IMAGE}, [reward], m.config.baseline)
    after = {g: log_prob(m.policy_logits(g, m.latents[g]), prefixes[g]).item() for g in (TEXT, IMAGE)}
    for g in (TEXT, IMAGE):
        assert (after[g] - before[g]) * sign > 0, g


@pytest.mark.parametrize(
    "strategy, moved",
    [
        (Joint(), [{TEXT, IMAGE}, {TEXT, IMAGE}]),
        (Alternate(), [{TEXT}, {IMAGE}]),
        (TextThenImage(), [{TEXT}, {IMAGE}]),
        (TextOnly(), [{TEXT}, {TEXT}]),
        (ImageOnly(), [{IMAGE}, {IMAGE}]),
    ],
)
def test_each_strategy_moves_exactly_its_groups(strategy, moved):
    bb = FakeBackbone()
    m = Milr(bb, ScriptedCritic([0.1]), strategy, config(steps=2))
    snapshots = []
    m.on_step = lambda step: snapshots.append({g: z.detach().clone() for g, z in m.latents.items()})
    result = m.run(RECORD)
    assert [set(s.groups) for s in result.steps[1:]] == moved
    for k, groups in enumerate(moved, start=1):
        for g in (TEXT, IMAGE):
            changed = not torch.equal(snapshots[k][g], snapshots[k - 1][g])
            assert changed == (g in groups), (k, g)
    # reasoning is re-written exactly at the steps where text latents moved
    assert len(bb.reason_calls) == 1 + sum(TEXT in g for g in moved)


def test_text_update_keeps_the_image_prefix():
    bb = FakeBackbone()
    run_milr(bb, ScriptedCritic([0.1]), Alternate(), RECORD, config(steps=2))
    first_prefix = bb.draw_calls[0][0]  # step 0 draws without a prefix
    assert bb.draw_calls[0][1] is None and first_prefix
    # step 1 moved text only: the image prefix is the step-0 image's own first tokens
    assert bb.draw_calls[1][1] is not None and bb.draw_calls[1][1].shape == (1, 1)


def test_first_text_at_text_temperature_rewrites_at_continuation_temperature():
    bb = FakeBackbone()
    run_milr(bb, ScriptedCritic([0.1]), Joint(), RECORD, config(steps=2, continuation_temperature=0.5))
    assert bb.reason_temperatures == [0.0, 0.5, 0.5]  # step 0 as without MILR, then two rewrites
    bb = FakeBackbone()
    run_milr(bb, ScriptedCritic([0.1]), Joint(), RECORD, config(steps=1, text_temperature=0.3, continuation_temperature=0))
    assert bb.reason_temperatures == [0.3, 0.0]


def test_best_of_n_with_sampled_text_gives_every_image_its_own_text():
    bb = FakeBackbone()
    run_milr(bb, ScriptedCritic([0.1]), Joint(), RECORD, config(steps=0, samples=3, text_temperature=1.0))
    assert bb.reason_calls[0].shape == (3, 0) and len(bb.draw_calls[0][0]) == 3
    bb = FakeBackbone()  # greedy text: one text shared by the N images
    run_milr(bb, ScriptedCritic([0.1]), Joint(), RECORD, config(steps=0, samples=3))
    assert bb.reason_calls[0] is None and len(bb.draw_calls[0][0]) == 3


def test_early_stop_and_best_of_trajectory():
    bb = FakeBackbone()
    result = run_milr(bb, ScriptedCritic([0.1, 0.5, 0.95, 0.2]), Joint(), RECORD, config(steps=10, threshold=0.9))
    assert len(result.steps) == 3 and result.stopped_early
    assert result.final_step == 2 and result.best_reward == 0.95

    bb = FakeBackbone()
    result = run_milr(bb, ScriptedCritic([0.3, 0.8, 0.2]), Joint(), RECORD, config(steps=2, threshold=0.9))
    assert len(result.steps) == 3 and not result.stopped_early
    assert (result.final_step, result.best_reward) == (1, 0.8)
    assert result.final_image is result.steps[1].images[0]


def test_first_image_already_good_means_no_steps():
    result = run_milr(FakeBackbone(), ScriptedCritic([0.95]), Joint(), RECORD, config(steps=5, threshold=0.9))
    assert len(result.steps) == 1 and result.final_step == 0


def test_nan_rewards_are_skipped_not_learned_from():
    bb = FakeBackbone()
    result = run_milr(bb, ScriptedCritic([float("nan"), 0.4, 0.3]), Joint(), RECORD, config(steps=2))
    assert result.steps[1].loss is None  # nothing to learn from step 0
    assert math.isnan(result.steps[0].rewards[0]) and "NaN" in result.steps[0].details[0]
    assert result.final_step == 1 and result.best_reward == 0.4


def test_several_samples_per_step_are_drawn_together():
    bb = FakeBackbone()
    critic = ScriptedCritic([0.1, 0.2, 0.3, 0.4])
    result = run_milr(bb, critic, Joint(), RECORD, config(steps=2, samples=4))
    assert all(len(s.rewards) == 4 for s in result.steps)
    assert all(len(reasoning) == 4 and (p is None or p.shape[0] == 4) for reasoning, p in bb.draw_calls)
    assert result.images_generated == 12


def test_draws_are_split_to_fit_and_halved_on_out_of_memory():
    bb = FakeBackbone(rows=2)
    run_milr(bb, ScriptedCritic([0.1]), Joint(), RECORD, config(steps=1, samples=4))
    assert [len(r) for r, _ in bb.draw_calls] == [2, 2, 2, 2]

    bb = FakeBackbone(rows=4, oom_above=1)
    result = run_milr(bb, ScriptedCritic([0.1]), Joint(), RECORD, config(steps=1, samples=4))
    assert [len(r) for r, _ in bb.draw_calls] == [1] * 8 and result.images_generated == 8


def test_same_seed_same_trajectory():
    def trace(seed):
        res = run_milr(FakeBackbone(), ScriptedCritic([0.1, 0.2, 0.3]), Joint(), RECORD, config(steps=3, seed=seed))
        return [s.trace() | {"images": [i.tobytes() for i in s.images]} for s in res.steps]

    a, b = trace(1), trace(1)
    for x in (a, b):
        for s in x:
            s.pop("seconds")
    assert a == b


def _comparable(steps):
    """A step's trace without its timing, plus its images' pixels."""
    return [{**s.trace(), "seconds": None, "images": [i.tobytes() for i in s.images]} for s in steps]


@pytest.mark.parametrize("samples", [1, 3])
def test_a_resumed_run_ends_exactly_as_an_uninterrupted_one(samples):
    rewards = [0.1, 0.4, 0.2, 0.3, 0.6, 0.5, 0.25, 0.35]
    cfg = config(steps=5, samples=samples, l2=0.1)
    whole = run_milr(FakeBackbone(), ScriptedCritic(rewards), Alternate(), RECORD, cfg)

    critic, states, kept = ScriptedCritic(rewards), [], []

    def stop_after_step_2(step):
        kept.append(step)
        if step.step == 3:
            raise KeyboardInterrupt  # step 3 is on record but its state was not handed out: it is redone

    with pytest.raises(KeyboardInterrupt):
        run_milr(FakeBackbone(), critic, Alternate(), RECORD, cfg, on_step=stop_after_step_2, on_state=states.append)
    state = states[-1]
    assert state.step == 2 and state.optimizers[TEXT]["state"]  # Adam's moments travel with it
    state = SearchState.from_dict(torch.load(_saved(state.to_dict()), weights_only=True))
    critic.calls = 3 * samples  # the scripted critic's script goes on where step 2 left it
    resumed = run_milr(FakeBackbone(), critic, Alternate(), RECORD, cfg, resume=state, earlier=kept[:3])
    assert [s.step for s in resumed.steps] == list(range(6))
    assert _comparable(resumed.steps) == _comparable(whole.steps)
    assert (resumed.final_step, resumed.final_sample, resumed.best_reward) == (whole.final_step, whole.final_sample, whole.best_reward)


def _saved(obj):
    """`obj` as torch.save writes it, ready to be read back."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def test_advantage_norm_rescales_the_step_by_the_reward_spread():
    rewards = [0.1, 0.5, 0.9, 0.2, 0.3, 0.4, 0.1, 0.2, 0.3]
    runs = [Milr(FakeBackbone(), ScriptedCritic(rewards), Joint(), config(steps=2, samples=3, optimizer="sgd",
                                                                           advantage_norm=norm)) for norm in (False, True)]
    for m in runs:
        m.run(RECORD)
    # with SGD the step is proportional to the advantages; their spread here is below 1, so dividing by it
    # moves the latents further (Adam would mostly cancel the scale)
    moved = [float((m.latents[TEXT] - m.start[TEXT]).detach().abs().sum()) for m in runs]
    assert moved[1] > 2 * moved[0] > 0
    adv = advantages(torch.tensor([0.1, 0.5, 0.9]), 0.0)
    assert torch.isclose((adv / (adv.std() + 1e-6)).std(), torch.tensor(1.0), atol=1e-4)


@pytest.mark.parametrize("radius", [0.01, 0.05])
def test_trust_region_keeps_every_latent_near_its_start(radius):
    rewards = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    free = Milr(FakeBackbone(), ScriptedCritic(rewards), Joint(), config(steps=3))
    held = Milr(FakeBackbone(), ScriptedCritic(rewards), Joint(), config(steps=3, trust_region=radius))
    free.run(RECORD), held.run(RECORD)
    for g in (TEXT, IMAGE):
        assert (free.latents[g] - free.start[g]).detach().norm(dim=-1).max() > radius  # it would have gone further
        assert (held.latents[g] - held.start[g]).detach().norm(dim=-1).max() <= radius + 1e-5


def test_image_lr_scale_sets_the_image_step_alone():
    rewards = [0.0, 0.0, 0.0]
    runs = [Milr(FakeBackbone(), ScriptedCritic(rewards), Joint(), config(steps=1, optimizer="sgd", image_lr_scale=s))
            for s in (1.0, 4.0)]
    for m in runs:
        m.run(RECORD)
    moved = {g: [float((m.latents[g] - m.start[g]).detach().norm()) for m in runs] for g in (TEXT, IMAGE)}
    assert moved[IMAGE][0] > 0 and moved[IMAGE][1] == pytest.approx(4 * moved[IMAGE][0], rel=1e-4)  # SGD: step ~ lr
    assert moved[TEXT][1] == pytest.approx(moved[TEXT][0])


def test_running_baseline_is_the_mean_of_the_earlier_rewards():
    # rewards 0.2, 0.6, 0.2: the second update's baseline is 0.2 (step 0), the third's (0.2 + 0.6) / 2 = 0.4
    seen = []
    m = Milr(FakeBackbone(), ScriptedCritic([0.2, 0.6, 0.2, 0.2]), Joint(), config(steps=3, running_baseline=True))
    update = m._update
    m._update = lambda *a: seen.append(a[-1]) or update(*a)
    m.run(RECORD)
    assert seen == [pytest.approx(1.0), pytest.approx(0.2), pytest.approx(0.4)]  # the first: `baseline`
    fixed = Milr(FakeBackbone(), ScriptedCritic([0.2, 0.6, 0.2, 0.2]), Joint(), config(steps=3))
    update_fixed, seen_fixed = fixed._update, []
    fixed._update = lambda *a: seen_fixed.append(a[-1]) or update_fixed(*a)
    fixed.run(RECORD)
    assert seen_fixed == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="running_baseline needs samples = 1"):
        config(running_baseline=True, samples=4)  # leave-one-out would ignore it


@pytest.mark.parametrize("first, image_positions, text_positions", [(0.0, 4, 4), (0.75, 3, 3), (1.0, 2, 2)])
def test_first_score_widens_the_prefixes_of_a_poor_first_image(first, image_positions, text_positions):
    # ceil(0.04 * 50) = 2 image positions, ceil(0.2 * 10) = 2 text positions at a first score of 1
    bb = FakeBackbone(text_len=10)
    m = Milr(bb, ScriptedCritic([first, 0.0]), Joint(), config(steps=1, threshold=1.0, image_ratio=0.04,
                                                               prefix_schedule="first-score"))
    m.run(RECORD)
    assert m.start[IMAGE].shape[0] == image_positions and m.start[TEXT].shape[0] == text_positions
    assert torch.equal(m.start[IMAGE], bb.hidden_image[:image_positions])
    assert bb.draw_calls[1][1].shape[1] == image_positions  # the next image keeps the wider prefix
    fixed = Milr(FakeBackbone(text_len=10), ScriptedCritic([first, 0.0]), Joint(),
                 config(steps=1, threshold=1.0, image_ratio=0.04))
    fixed.run(RECORD)
    assert fixed.start[IMAGE].shape[0] == 2 and fixed.start[TEXT].shape[0] == 2
