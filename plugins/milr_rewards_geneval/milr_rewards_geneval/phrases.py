"""Noun phrases and spatial relations of a prompt, without a parser model.

T2I-CompBench asks BLIP about spaCy `en_core_web_sm` noun chunks and takes the
spatial objects from spaCy's part-of-speech tags. spaCy's models are downloaded
from GitHub, not installed from PyPI, so milr chunks with closed word lists:

1. lower-case the prompt and split it into words (punctuation separates words
   and is dropped; "teddy-bear" stays one word);
2. a phrase starts at a determiner or number ("a", "the", "two", "some", ...)
   or at the first other word after a break;
3. it ends before a break word (prepositions, conjunctions, pronouns,
   auxiliaries and a short list of verbs common in benchmark prompts) or
   before the next determiner.

On T2I-CompBench's attribute prompts ("a red book and a yellow vase", "fluffy
clouds and a glass table") this gives spaCy's chunks. It errs where a verb is
not on the list ("the clouds drifted over ..." keeps "drifted" in the phrase);
such a phrase still names its object, so a VQA question about it still makes sense.
"""

from __future__ import annotations

import re

DETERMINERS = frozenset(
    "a an the this these those some several many few each every another any all both his her their its my our "
    "your one two three four five six seven eight nine ten".split()
)  # fmt: skip
BREAKS = frozenset(
    # prepositions and conjunctions
    "on in of at by with near next to beside under over above below behind between from into onto inside "
    "outside across along around through toward towards against among beneath underneath upon within "
    "without for during while and or but as than like "
    # pronouns, relatives, auxiliaries and copulas
    "it they he she them him there here who which that whose is are was were be been being has have had "
    "does do did can could will would "
    # verbs frequent in T2I-CompBench's complex and non-spatial prompts
    "sits sitting sat stands standing stood lies lying lay rests resting rested hangs hanging hung "
    "floats floating floated holds holding held wears wearing wore rides riding rode perched placed "
    "looks looking playing running walking eating".split()
)  # fmt: skip
# T2I-CompBench drops these chunks (BLIPvqa_eval/BLIP_vqa.py; "the top" is not among them) ...
SKIPPED = frozenset({"top", "the side", "the left", "the right"})
# ... and its spatial relations, in the order it tests them (UniDet_eval/2D_spatial_eval.py `vocab_spatial`).
SPATIAL = ("on side of", "next to", "near", "on the left of", "on the right of", "on the bottom of",
           "on the top of", "on top of")  # fmt: skip
# 3D_spatial_eval.py's relations
SPATIAL_3D = ("in front of", "behind", "hidden")
# Nouns that name a place relative to an object ("on the left of"), not an object.
PLACES = frozenset({"left", "right", "top", "bottom", "side", "front", "back", "middle", "center"})


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", text.lower())


def noun_phrases(text: str) -> list[str]:
    """The prompt's noun phrases, in order, lower-case (see the module docstring)."""
    phrases: list[list[str]] = []
    current: list[str] | None = None
    for word in words(text):
        if word in BREAKS:
            current = None
        elif word in DETERMINERS or current is None:
            current = [word]
            phrases.append(current)
        else:
            current.append(word)
    return [" ".join(p) for p in phrases if any(w not in DETERMINERS for w in p)]


def content(phrase: str) -> str:
    """The phrase without its leading determiners: 'a red book' -> 'red book'."""
    kept = phrase.split()
    while len(kept) > 1 and kept[0] in DETERMINERS:
        kept = kept[1:]
    return " ".join(kept)


def head(phrase: str) -> str:
    """The last word, which names the object in English noun phrases: 'red book' -> 'book'."""
    return phrase.split()[-1]


def questions(text: str, limit: int = 8) -> list[str]:
    """T2I-CompBench's BLIP-VQA questions: '<noun phrase>?' for up to `limit` (its --np_num) phrases."""
    return [f"{p}?" for p in noun_phrases(text) if p not in SKIPPED][:limit]


def spatial(text: str, relations: tuple[str, ...] = SPATIAL) -> tuple[str, str, str] | None:
    """(object before, relation, object after) for the first of `relations` (T2I-CompBench's 2D ones
    by default) in the prompt.

    Objects are the noun phrases next to the relation, without determiners
    ('a teddy bear on the left of a car' -> ('teddy bear', 'on the left of', 'car')).
    """
    lowered = " ".join(words(text))
    for relation in relations:
        match = re.search(rf"\b{relation}\b", lowered)
        if match:
            before, after = noun_phrases(lowered[: match.start()]), noun_phrases(lowered[match.end() :])
            if before and after:
                return content(before[-1]), relation, content(after[0])
            return None
    return None
