"""The Mixed critic: GroundingDINO for objects, counts and positions, BLIP VQA for attributes.

MILR's "Mixed" reward combines an open-vocabulary detector with a VQA model.
milr's combination, reward = the mean of atom scores in [0, 1]:

GenEval-style records (with `include`):
- detect every class named in `include` and `exclude` with GroundingDINO
  (grounding.py: box threshold 0.35, per-class NMS);
- colour: for each include clause with a colour whose count is met, crop each
  of its `count` most confident boxes and ask BLIP "is the <class> <colour>?";
  p = P(yes) / (P(yes) + P(no)) per object; an object has the colour when p >= 0.5;
- rules.judge on these detections (thresholding done above, so the counting
  tag's 0.9, meant for Mask2Former scores, is not applied) gives GenEval's atoms:
  count, colour, position per include clause, one per exclude clause;
- every atom scores 0/1 except colour atoms whose count is met, which score the
  mean p of the clause's objects (a soft signal while the colour is still wrong);
- as in rules.py, the reward is 0 when no include atom passes.

Free prompts (no `include`, e.g. T2I-CompBench): per noun phrase (phrases.py)
a presence atom (1 if GroundingDINO finds the phrase) and, when the phrase has
more than one word after its determiner ("red book"), an attribute atom: BLIP's
p for "<phrase>?" on the whole image, as T2I-CompBench asks it; plus, when the
prompt has a T2I-CompBench spatial relation, a position atom scored by
t2i.position_score on the two objects' most confident boxes (0 if one is missing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from milr_core.interfaces import Critic, PromptRecord, Score

from . import grounding, phrases, t2i, vqa
from .rules import confident, judge

if TYPE_CHECKING:
    from PIL.Image import Image

    from .rules import Detection

MIXED_VQA = "Salesforce/blip-vqa-base"
MIXED_VQA_ENV = "MILR_MIXED_VQA"
COLOR_QUESTION = "is the {cls} {color}?"
HAS_COLOR = 0.5  # an object has the asked colour when P(yes) >= 0.5


class MixedCritic(Critic):
    """GroundingDINO detections + BLIP VQA attributes, combined as the module docstring says."""

    name = "mixed"
    requires = tuple(dict.fromkeys(grounding.REQUIRES + vqa.REQUIRES))

    def __init__(self, grounder: grounding.Grounder, vqa_model: vqa.BlipYesNo):
        self.grounder, self.vqa = grounder, vqa_model

    @classmethod
    def load(cls, detector: str | None = None, vqa_model: str | None = None, device: str | None = None) -> MixedCritic:
        """`detector` (else MILR_GROUNDING_DINO, else grounding-dino-base) and `vqa_model`
        (else MILR_MIXED_VQA, else Salesforce/blip-vqa-base): hub ids or folders."""
        return cls(
            grounding.Grounder.load(detector, device), vqa.BlipYesNo.load(vqa_model, MIXED_VQA_ENV, MIXED_VQA, device)
        )

    def score(self, images: list[Image], record: PromptRecord) -> list[Score]:
        if record.include:
            return self._score_geneval(images, record)
        return self._score_free(images, record)

    def _score_geneval(self, images: list[Image], record: PromptRecord) -> list[Score]:
        classes = [req["class"] for req in record.include + record.exclude]
        found = self.grounder.detect(images, classes)
        soft = self._colors(images, found, record)
        untagged = {**record.to_dict(), "tag": None}
        scores = []
        for i, dets in enumerate(found):
            verdict = judge(untagged, dets)
            values = [soft.get((i, name), float(ok)) for name, ok in verdict.checks]
            value = sum(values) / len(values) if values and verdict.fraction > 0 else 0.0
            head = "correct" if verdict.correct else f"incorrect: {verdict.reason}"
            shown = ", ".join(f"{len(v)} {k}" for k, v in confident(dets, None).items()) or "nothing"
            scores.append(Score(value, f"{head} (found: {shown})"))
        return scores

    def _colors(self, images: list[Image], found: list[list[Detection]], record: PromptRecord) -> dict:
        """Ask BLIP each coloured clause's objects; set their `.color`; return (image, colour atom) -> mean p."""
        jobs = []  # (image index, atom name, detection, colour)
        for i, dets in enumerate(found):
            objects = confident(dets, None)
            for req in record.include:
                top = objects.get(req["class"], [])[: req["count"]]
                if "color" in req and len(top) >= req["count"]:
                    name = f"color {req['color']} {req['class']}"  # rules.judge's name for this atom
                    jobs += [(i, name, det, req["color"]) for det in top]
        if not jobs:
            return {}
        crops = [images[i].convert("RGB").crop(det.box) for i, _, det, _ in jobs]
        asked = [[COLOR_QUESTION.format(cls=det.label, color=color)] for _, _, det, color in jobs]
        answers = [p[0] for p in self.vqa.p_yes(crops, asked)]
        soft: dict[tuple[int, str], list[float]] = {}
        for (i, name, det, color), p in zip(jobs, answers):
            det.color = color if p >= HAS_COLOR else f"not {color}"
            soft.setdefault((i, name), []).append(p)
        return {key: sum(ps) / len(ps) for key, ps in soft.items()}

    def _score_free(self, images: list[Image], record: PromptRecord) -> list[Score]:
        nouns = [phrases.content(p) for p in phrases.noun_phrases(record.prompt)]
        nouns = [n for n in dict.fromkeys(nouns) if n not in phrases.PLACES]
        relation = phrases.spatial(record.prompt)
        if not nouns:
            return [Score(0.0, "no noun phrase to look for") for _ in images]
        found = self.grounder.detect(images, nouns + (list(relation[::2]) if relation else []))
        described = [n for n in nouns if len(n.split()) > 1]
        answers = (
            self.vqa.p_yes(images, [[f"{n}?" for n in described]] * len(images)) if described else [[]] * len(images)
        )
        scores = []
        for image, dets, ps in zip(images, found, answers):
            best = {}
            for det in dets:  # most confident first
                best.setdefault(det.label, det)
            atoms = {f"{n} present": float(n in best) for n in nouns}
            atoms.update({f"{n}?": p for n, p in zip(described, ps)})
            if relation:
                obj1, rel, obj2 = relation
                boxes = [best[o].box if o in best else None for o in (obj1, obj2)]
                scale = t2i.unidet_scale(image.width, image.height)
                pos = t2i.position_score(rel, *[tuple(v * scale for v in b) for b in boxes]) if all(boxes) else 0.0
                atoms[f"{obj1} {rel} {obj2}"] = pos
            detail = ", ".join(f"{k} {v:.2f}" for k, v in atoms.items())
            scores.append(Score(sum(atoms.values()) / len(atoms), detail))
        return scores
