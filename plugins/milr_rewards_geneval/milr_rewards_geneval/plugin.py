"""Registers this package's critics with milr; heavy modules load on first use."""

from milr_core.plugins import hookimpl

# Seed of the held-out `milr bench shapes` prompts; training sets must draw from other seeds.
HELD_OUT_SEED = 7_000_001
HELD_OUT_PROMPTS = 200
SCENES_HELD_OUT_SEED = 7_000_017  # likewise for `milr bench scenes`


def _shapes_oracle(backbone=None, **kwargs):
    from .shapes_oracle import ShapesOracle

    return ShapesOracle(**kwargs)  # reads pixels only: the backbone is not needed


def _scenes_oracle(backbone=None, **kwargs):
    from .scenes_oracle import ScenesOracle

    return ScenesOracle(**kwargs)


def _geneval(backbone=None, **kwargs):
    from .geneval_oracle import GenevalOracle

    return GenevalOracle.load(**kwargs)


def _mixed(backbone=None, **kwargs):
    from .mixed import MixedCritic

    return MixedCritic.load(**kwargs)


def _clip(name):
    def make(backbone=None, **kwargs):
        from .clip_score import ClipScore

        return ClipScore.load(name, **kwargs)

    return make


def _t2i_blip_vqa(backbone=None, **kwargs):
    from .t2i import T2IBlipVqa

    return T2IBlipVqa.load(**kwargs)


def _t2i_spatial(backbone=None, **kwargs):
    from .t2i import T2ISpatial

    return T2ISpatial.load(**kwargs)


def _t2i_numeracy(backbone=None, **kwargs):
    from .t2i import T2INumeracy

    return T2INumeracy.load(**kwargs)


def _t2i_3d_spatial(backbone=None, **kwargs):
    from .t2i import T2I3DSpatial

    return T2I3DSpatial.load(**kwargs)


def _t2i_compbench(backbone=None, **kwargs):
    from .t2i import T2ICompBench

    return T2ICompBench.load(**kwargs)


@hookimpl
def register_critics(register):
    register("shapes-oracle", _shapes_oracle, "GenEval's rules on objects found exactly in shapes-world images")
    register("scenes-oracle", _scenes_oracle, "GenEval's rules plus a relative-size rule on objects found exactly in scenes-world images")
    register("geneval", _geneval, "GenEval's oracle: Mask2Former Swin-S detections, CLIP ViT-L-14 colours, GenEval's rules")
    register("mixed", _mixed, "GroundingDINO objects, counts and positions + BLIP VQA attributes (mean of atom scores)")
    register("clipscore", _clip("clipscore"), "CLIPScore with open_clip ViT-L-14: min(2.5 * max(cos, 0), 1)")
    register("t2i-clip", _clip("t2i-clip"), "T2I-CompBench non-spatial: CLIP ViT-B/32 cosine")
    register("t2i-blip-vqa", _t2i_blip_vqa, "T2I-CompBench attribute binding: product of BLIP-VQA P(yes) per noun phrase")
    register("t2i-spatial", _t2i_spatial, "T2I-CompBench 2D spatial score on GroundingDINO detections")
    register("t2i-numeracy", _t2i_numeracy, "T2I-CompBench numeracy: counts of GroundingDINO detections per number word")
    register("t2i-3d-spatial", _t2i_3d_spatial, "T2I-CompBench 3D spatial: GroundingDINO boxes ordered by DPT (MiDaS) depth")
    register("t2i-compbench", _t2i_compbench, "T2I-CompBench's score for each prompt's category (its tag)")


def _held_out(world: str, seed: int):
    """A loader of the world's held-out set, balanced over its tags for any limit; a file is read as
    GenEval JSONL."""

    def load(path, limit):
        from importlib import import_module

        module = import_module(f"{__package__}.{world}")
        if path is not None:
            from milr_core.bench.prompts import load_geneval

            return load_geneval(path, classes=module.CLASSES)[:limit]
        return module.prompt_set(limit or HELD_OUT_PROMPTS, seed=seed)

    return load


@hookimpl
def register_benchmarks(register):
    from milr_core.bench.prompts import Benchmark

    shapes = Benchmark(_held_out("shapes", HELD_OUT_SEED), critic="shapes-oracle", backbone="janus-shapes")
    register("shapes", lambda **kw: shapes, f"{HELD_OUT_PROMPTS} held-out shapes-world prompts in GenEval format")
    scenes = Benchmark(_held_out("scenes", SCENES_HELD_OUT_SEED), critic="scenes-oracle", backbone="janus-scenes")
    register("scenes", lambda **kw: scenes, f"{HELD_OUT_PROMPTS} held-out scenes-world prompts (GenEval's six forms and four more)")
