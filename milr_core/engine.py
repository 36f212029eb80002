"""The MILR loop (Algorithm 1 of arXiv 2509.22761): REINFORCE on latent vectors.

Step 0 writes the reasoning text and the first image(s) and reads the latents:
the final-layer hidden states behind the first m_t reasoning tokens and the
first m_v image tokens (both CFG rows of each image token). Every later step
1. updates the moving latent groups with Adam on
   -(r - b) * log p(target | z)  (+ an optional L2 pull to the start), where r
   are the previous step's rewards and the targets the prefix tokens those
   images were made from (`loss_target = "drawn"`) or the most likely tokens
   under the current latents (`"argmax"`, the reference);
2. reads new prefix tokens from the updated latents (text: argmax with one
   sample per step, sampled otherwise; image: sampled from the guided or the
   conditional distribution, `image_policy`), regenerates the reasoning text
   when text latents moved (continued after the prefix at
   `continuation_temperature`) and the image always, and
3. scores the new image(s) with the critic; every answer is checked here.
It stops once a reward exceeds the threshold and returns the best image seen
(or the last, `return_image`). With `frozen` the update is skipped: the same
loop resamples from fixed latents, the control that shows what the gradient adds.
The estimator variants (advantage_norm, trust_region, image_lr_scale, running_baseline)
and prefix_schedule default to the above; each changes one named piece of it.
RunConfig's `preset` chooses these settings together (config.py, PRESETS).
After every step the whole search state can be handed out (`on_state`), and a
search can go on from such a state (`run(resume=...)`) exactly as it would have.
Nothing here knows a model: the backbone's heads are the policy, and the backbone
declares which latent groups it has (`latent_groups`). One that draws pixels itself
without image tokens (a diffusion decoder, as BAGEL's) has text latents alone: every
strategy then moves only those, and one that would move nothing is refused.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

import torch

from .calls import Call, DecodeCall, DrawCall, ReasonCall, ScoreCall, serve
from .config import RunConfig
from .errors import MilrError
from .interfaces import IMAGE, TEXT, Backbone, Critic, DrawJob, PromptRecord, ReasonJob, Strategy

log = logging.getLogger(__name__)


@dataclass
class Step:
    """What one step produced: one entry per sample."""

    step: int
    groups: list[str]
    rewards: list[float]
    details: list[str]
    reasoning: list[str]
    images: list = field(repr=False)  # PIL images
    loss: float | None
    seconds: float
    correct: list[bool | None] = field(default_factory=list)  # the critic's own verdicts (oracles), else None

    def trace(self) -> dict:
        """The JSON-serialisable part (images are written by the caller)."""
        return {
            "step": self.step,
            "groups": self.groups,
            "rewards": [json_number(r) for r in self.rewards],
            "correct": self.correct,
            "details": self.details,
            "reasoning": self.reasoning,
            "loss": self.loss,
            "seconds": round(self.seconds, 4),
        }


@dataclass
class Result:
    """A finished (or interrupted) search; `final_*` is the image it returns."""

    steps: list[Step]
    final_step: int
    final_sample: int
    stopped_early: bool

    @classmethod
    def from_steps(cls, steps: list[Step], stopped_early: bool = False, return_image: str = "best") -> Result:
        """The returned image of the steps so far (also what an interrupted run keeps): the best
        scored of all steps, or with `return_image="last"` the best of the last step (with one
        sample per step, the last image; with none searched, Best-of-N's pick)."""
        step, sample = best_of(steps[-1:] if return_image == "last" else steps)[:2]
        return cls(steps, step, sample, stopped_early)

    @property
    def final(self) -> Step:
        return self.steps[self.final_step]

    @property
    def final_image(self):
        return self.final.images[self.final_sample]

    @property
    def final_reasoning(self) -> str:
        return self.final.reasoning[self.final_sample]

    @property
    def final_reward(self) -> float:
        return self.final.rewards[self.final_sample]

    @property
    def final_detail(self) -> str:
        return self.final.details[self.final_sample]

    @property
    def final_correct(self) -> bool | None:
        return self.final.correct[self.final_sample] if self.final.correct else None

    @property
    def best_reward(self) -> float:
        return best_of(self.steps)[2]

    @property
    def images_generated(self) -> int:
        return sum(len(s.images) for s in self.steps)


@dataclass
class SearchState:
    """What the loop carries from step `step` to the next: resumed from it, a run
    draws and scores exactly what the uninterrupted run would have."""

    step: int
    latents: dict[str, torch.Tensor]
    start: dict[str, torch.Tensor]
    prefixes: dict[str, torch.Tensor]
    optimizers: dict[str, dict]  # state_dict per group
    generator: torch.Tensor  # torch.Generator.get_state(): the backbone's random draws go on from here
    texts: list[str]
    rewards: list[float]

    def to_dict(self) -> dict:
        """Plain dicts, lists and tensors, which torch.load(weights_only=True) reads back."""
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: dict) -> SearchState:
        return cls(**data)


def json_number(x: float) -> float | None:
    """NaN and infinities are not JSON: a skipped (NaN) reward is written as null."""
    return x if math.isfinite(x) else None


def prefix_length(ratio: float, total: int, rule: str = "ceil") -> int:
    """How many of `total` positions a prefix of share `ratio` takes: ceil (at least one of a
    non-empty sequence) or floor, the reference's int(ratio * total), which may be 0 (kept with
    its float rounding, as the reference has it). ceil rounds the product to 9 decimals first, so
    that 0.2 * 1.5 * 10 (3.0000000000000004) takes 3 positions, not 4."""
    if rule == "floor":
        return int(ratio * total)
    return min(total, math.ceil(round(ratio * total, 9)))


def advantages(rewards: torch.Tensor, baseline: float) -> torch.Tensor:
    """r - b: a fixed baseline for one sample, leave-one-out for several."""
    n = rewards.numel()
    if n == 1:
        return rewards - baseline
    return rewards - (rewards.sum() - rewards) / (n - 1)


def log_prob(logits: torch.Tensor, prefixes: torch.Tensor) -> torch.Tensor:
    """Sum over positions of log p(prefix token | latent), per sample.

    logits (m, V) from m latents; prefixes (S, m) -> (S,).
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, prefixes.T.to(logp.device)).sum(0)


class Milr:
    """One MILR search over one prompt; `run()` is the whole of Algorithm 1."""

    def __init__(
        self,
        backbone: Backbone,
        critic: Critic,
        strategy: Strategy,
        config: RunConfig,
        on_step: Callable[[Step], None] | None = None,
        on_state: Callable[[SearchState], None] | None = None,
    ):
        self.backbone, self.critic, self.strategy, self.config = backbone, critic, strategy, config
        self.on_step = on_step or (lambda step: None)
        self.on_state = on_state  # called after on_step, so a saved state never runs ahead of the saved steps
        self.generator = torch.Generator(device=backbone.device).manual_seed(config.seed)

    # -- generation ----------------------------------------------------------
    def _draw(self, prompt: str, reasoning: list[str], prefixes: torch.Tensor | None, keep: int) -> DrawCall:
        c = self.config
        return DrawCall(DrawJob(prompt, reasoning, prefixes, self.generator), c.cfg_scale, c.temperature, keep)

    def _rewards(self, scores) -> tuple[list[float], list[str], list[bool | None]]:
        """Rewards, details and verdicts from the critic's answer (checked where it is served: calls.py)."""
        rewards, details, correct = [], [], []
        for i, s in enumerate(scores):
            r = float(s.value)
            if self.config.reward_shaping == "binary" and s.correct is not None:
                r = float(s.correct)
            if math.isnan(r):
                log.warning("critic %s returned NaN for sample %d; it is left out of the update", self.critic.name, i)
            rewards.append(r)
            details.append(f"NaN reward (skipped): {s.detail}" if math.isnan(r) else s.detail)
            correct.append(s.correct)
        return rewards, details, correct

    def _sample_prefix(self, logits: torch.Tensor, n: int, temperature: float) -> torch.Tensor:
        """n prefixes (n, m) from per-position logits (m, V); temperature 0 = argmax."""
        if temperature == 0:
            return logits.argmax(-1).expand(n, -1).clone()
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        return torch.multinomial(probs, n, replacement=True, generator=self.generator).T.contiguous()

    def policy_logits(self, group: str, latents: torch.Tensor) -> torch.Tensor:
        """The distribution each group's prefix tokens are read from (m, V): the language-model head
        for text; for image the guided or the conditional head, at the image temperature."""
        c = self.config
        if group == TEXT:
            return self.backbone.text_logits(latents)
        guidance = c.cfg_scale if c.image_policy == "guided" else None
        return self.backbone.image_logits(latents, guidance) / c.temperature

    # -- the loop ----------------------------------------------------------
    def run(self, record: PromptRecord, resume: SearchState | None = None, earlier: Sequence[Step] = ()) -> Result:
        """Algorithm 1. With `resume` (a state taken after step j) it goes on at step j + 1;
        `earlier` are steps 0..j as first reported, so that the Result covers the whole run."""
        search = self.search(record, resume, earlier)
        answer = None
        while True:
            try:
                call = search.send(answer)
            except StopIteration as stop:
                return stop.value
            answer = serve(self.backbone, self.critic, [call])[0]

    def search(
        self, record: PromptRecord, resume: SearchState | None = None, earlier: Sequence[Step] = ()
    ) -> Generator[Call, object, Result]:
        """`run` as a generator: it yields what it needs from the models (calls.py) and is sent the
        answers, so that a scheduler can answer many searches' calls in one batch. Grad mode is
        global state, so no `torch.no_grad()` block is open across a yield."""
        c, bb = self.config, self.backbone
        has = set(bb.latent_groups)  # declared by the backbone: text, and image where it has an image head
        if c.steps > 0 and not any(self.strategy.moves(g, c.steps) for g in has):
            raise MilrError(
                f"strategy {self.strategy.name} moves no latent group of backbone {bb.name} (it has {', '.join(sorted(has))} latents)"
            )
        n = c.samples
        steps: list[Step] = list(earlier)
        # the reference's ablations: image-only writes no reasoning text, text-only no image prefix
        paper_ablation = c.ablations == "paper" and c.steps > 0
        write_text = not (paper_ablation and not self.strategy.moves(TEXT, c.steps))
        keep_image_prefix = not (paper_ablation and not self.strategy.moves(IMAGE, c.steps))
        if resume is None:
            t0 = time.perf_counter()
            # no search to follow (baseline, Best-of-N) and sampled text: every image gets its own text;
            # a search starts all samples from one text, whose latents it optimises
            rows = n if c.steps == 0 and c.text_temperature > 0 else 1
            if write_text:
                empty = None if rows == 1 else torch.zeros(rows, 0, dtype=torch.long)  # `rows` texts from no prefix
                job = ReasonJob(record.prompt, empty, c.max_reasoning_tokens, c.text_temperature, self.generator)
                first = yield ReasonCall(job)
                text_tokens, text_hidden = first.tokens[0], first.hidden[0]
                texts = first.text if rows > 1 else first.text * n
                # the reference counts the end-of-sequence position in T (its latent is never in a short prefix)
                total = len(text_tokens) + int(c.prefix_rule == "floor" and bool(first.eos) and first.eos[0])
            else:
                text_tokens = torch.zeros(0, dtype=torch.long)
                text_hidden = torch.zeros(0, bb.hidden_size)
                texts, total = [""] * n, 0
            # first-score may double the ratios once the first image is scored: read latents for that many
            most = 2.0 if c.prefix_schedule == "first-score" else 1.0
            n_image = bb.latent_groups[IMAGE] if IMAGE in has else 0
            drawing = yield self._draw(record.prompt, texts, None,
                                       prefix_length(min(1.0, most * c.image_ratio), n_image, c.prefix_rule))
            images = yield DecodeCall(drawing)
            scores = yield ScoreCall(images, record)
            rewards, details, correct = self._rewards(scores)
            scale = first_score_scale(scores) if c.prefix_schedule == "first-score" else 1.0
            m_t = prefix_length(min(1.0, scale * c.text_ratio), total, c.prefix_rule) if write_text else 0
            m_v = prefix_length(min(1.0, scale * c.image_ratio), n_image, c.prefix_rule)
            latents = {TEXT: text_hidden[:m_t].detach().float().clone().requires_grad_(True)}
            prefixes = {TEXT: text_tokens[:m_t].expand(n, -1).clone()}
            if IMAGE in has:
                latents[IMAGE] = drawing.hidden[0][:m_v].detach().float().clone().requires_grad_(True)
                prefixes[IMAGE] = drawing.tokens[:, :m_v].clone()
            start = {g: z.detach().clone() for g, z in latents.items()}
        else:
            if len(steps) != resume.step + 1:
                raise ValueError(f"resuming after step {resume.step} needs its {resume.step + 1} earlier steps, got {len(steps)}")
            resume = copy.deepcopy(resume)  # the optimisers would otherwise update the caller's tensors in place
            self.generator.set_state(resume.generator)
            latents = {g: z.to(bb.device).requires_grad_(True) for g, z in resume.latents.items()}
            start = {g: z.to(bb.device) for g, z in resume.start.items()}
            prefixes = {g: p.to(bb.device) for g, p in resume.prefixes.items()}
            texts, rewards = resume.texts, resume.rewards
            m_t, m_v = len(latents[TEXT]), len(latents[IMAGE]) if IMAGE in latents else 0
        self.latents, self.start = latents, start  # kept for inspection after the run
        opt_cls = torch.optim.Adam if c.optimizer == "adam" else torch.optim.SGD
        # one optimiser per group, so a group that rests keeps no momentum-driven drift
        optimizers = {g: opt_cls([z], lr=c.lr * (c.image_lr_scale if g == IMAGE else 1.0)) for g, z in latents.items()}
        if resume is not None:
            for g, opt in optimizers.items():
                opt.load_state_dict(resume.optimizers[g])
        movable = ({IMAGE} if m_v > 0 else set()) | ({TEXT} if m_t > 0 else set())
        # the reference searches only when both prefixes are non-empty (int lengths may be 0)
        search = c.prefix_rule != "floor" or ((m_v > 0 or IMAGE not in has) and (m_t > 0 or not write_text))
        if not search and c.steps > 0 and resume is None:
            log.warning(
                "no search: int(ratio x length) is 0 for the %s prefix (%d text tokens, %d image tokens); the first "
                "image is returned, as the reference does (prefix_rule = 'ceil' or a larger ratio searches)",
                "text" if m_t == 0 and write_text else "image", m_t, m_v,
            )

        def done(step: Step) -> None:
            steps.append(step)
            self.on_step(step)
            if self.on_state is not None:
                state = SearchState(
                    step.step,
                    {g: z.detach() for g, z in latents.items()},
                    start,
                    prefixes,
                    {g: opt.state_dict() for g, opt in optimizers.items()},
                    self.generator.get_state(),
                    texts,
                    rewards,
                )
                self.on_state(copy.deepcopy(state))  # a snapshot: the loop goes on changing its tensors

        if resume is None:
            done(Step(0, [], rewards, details, texts, images, None, time.perf_counter() - t0, correct))
        best = best_of(steps)

        for k in range(steps[-1].step + 1, (c.steps if search else 0) + 1):
            if best[2] > c.threshold:
                break
            t0 = time.perf_counter()
            groups = self.strategy.groups(k, c.steps) & movable
            baseline = running_mean(steps[:-1]) if c.running_baseline and len(steps) > 1 else c.baseline
            loss = self._update(latents, start, prefixes, optimizers, groups, rewards, baseline)
            if TEXT in groups:
                with torch.no_grad():
                    temp = 0.0 if n == 1 else 1.0
                    prefixes[TEXT] = self._sample_prefix(self.policy_logits(TEXT, latents[TEXT]), n, temp)
                budget = c.continuation_tokens or max(1, c.max_reasoning_tokens - m_t)
                job = ReasonJob(record.prompt, prefixes[TEXT], budget, c.continuation_temperature, self.generator)
                texts = (yield ReasonCall(job)).text
            if IMAGE in groups:
                with torch.no_grad():
                    prefixes[IMAGE] = self._sample_prefix(self.policy_logits(IMAGE, latents[IMAGE]), n, 1.0)
            drawing = yield self._draw(record.prompt, texts, prefixes.get(IMAGE) if keep_image_prefix else None, 0)
            images = yield DecodeCall(drawing)
            rewards, details, correct = self._rewards((yield ScoreCall(images, record)))
            done(Step(k, sorted(groups), rewards, details, texts, images, loss, time.perf_counter() - t0, correct))
            best = best_of(steps)

        stopped_early = best[2] > c.threshold and len(steps) <= c.steps
        return Result.from_steps(steps, stopped_early, c.return_image)

    def _update(self, latents, start, prefixes, optimizers, groups, rewards, baseline: float) -> float | None:
        """One policy-gradient step on the moving groups; None when nothing could be learned."""
        r = torch.tensor(rewards, dtype=torch.float32)
        valid = ~torch.isnan(r)
        if not groups or not valid.any():
            return None
        adv = advantages(r[valid], baseline)
        if self.config.advantage_norm and adv.numel() > 1:
            adv = adv / (adv.std() + 1e-6)
        loss = torch.zeros(())
        for g in groups:
            z = latents[g]
            logits = self.policy_logits(g, z)
            if self.config.loss_target == "argmax":
                targets = logits.detach().argmax(-1).expand(int(valid.sum()), -1)
            else:
                targets = prefixes[g][valid.to(prefixes[g].device)]
            logp = log_prob(logits, targets).cpu()
            loss = loss + -(adv * logp).mean()
            if self.config.l2 > 0:
                loss = loss + self.config.l2 * (z - start[g]).pow(2).flatten(1).sum(-1).mean().cpu()
        if self.config.frozen:
            return float(loss.detach())  # the resample control: same loop, the latents stay where they are
        for g in groups:
            optimizers[g].zero_grad()
        loss.backward()
        for g in groups:
            optimizers[g].step()
        if self.config.trust_region > 0:
            with torch.no_grad():
                for g in groups:
                    moved = latents[g] - start[g]
                    scale = (self.config.trust_region / moved.norm(dim=-1, keepdim=True).clamp_min(1e-12)).clamp(max=1)
                    latents[g].copy_(start[g] + moved * scale)
        return float(loss.detach())


def running_mean(steps: Sequence[Step]) -> float:
    """The mean of the steps' non-NaN rewards (0 when there are none): the running-mean baseline."""
    seen = [r for s in steps for r in s.rewards if not math.isnan(r)]
    return sum(seen) / len(seen) if seen else 0.0


def first_score_scale(scores) -> float:
    """2 - s, s the mean of the critic's scores of the first image(s) clamped to 0..1 (NaN ones left
    out; none left: 1): how much first-score widens the prefix ratios."""
    values = [min(1.0, max(0.0, float(x.value))) for x in scores if not math.isnan(float(x.value))]
    return 2.0 - sum(values) / len(values) if values else 1.0


def best_of(steps: list[Step]) -> tuple[int, int, float]:
    """(step, sample, reward) of the highest non-NaN reward; the earliest wins ties (and the first
    image when every reward is NaN)."""
    best = (steps[0].step if steps else 0, 0, -math.inf)
    for s in steps:
        for i, r in enumerate(s.rewards):
            if not math.isnan(r) and r > best[2]:
                best = (s.step, i, r)
    return best


def run_milr(
    backbone: Backbone,
    critic: Critic,
    strategy: Strategy,
    record: PromptRecord,
    config: RunConfig,
    on_step: Callable[[Step], None] | None = None,
    on_state: Callable[[SearchState], None] | None = None,
    resume: SearchState | None = None,
    earlier: Sequence[Step] = (),
) -> Result:
    return Milr(backbone, critic, strategy, config, on_step, on_state).run(record, resume, earlier)
