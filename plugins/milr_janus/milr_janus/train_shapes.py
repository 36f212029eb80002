"""Train a small Janus-Pro on a synthetic world: janus-shapes (the embedded default) or janus-scenes.

    pip install -e "plugins/milr_janus[train]"
    python -m milr_janus.train_shapes --out DIR --device cuda                   # janus-shapes
    python -m milr_janus.train_shapes --preset scenes --out DIR --device cuda   # janus-scenes

It is a JanusForConditionalGeneration like Janus-Pro, only small, and it is
trained on a world of milr_rewards_geneval.worlds in five seeded steps:
1. examples from shapes_data.TRAIN_SEED, checked to share nothing with the
   held-out prompts of `milr bench <world>` (shapes_data.leaks);
2. a byte-level BPE tokenizer on their texts, with Janus-Pro's special tokens
   and chat template (tiny.build_tokenizer);
3. the VQ model on the renders (shapes_vq), checked by the oracle on its
   reconstructions of the held-out prompts' reference scenes (should be ~1.0);
   the scenes preset starts it from janus-shapes' VQ model (same palette and
   shapes, twice the pixels), which needs far fewer steps than a fresh one;
4. the language model on reasoning text and image tokens (shapes_lm), saving
   a float16 checkpoint at each snapshot step; with the preset's `pairs`, the
   understanding branch too, on yes/no questions and captions of their
   images (understanding.py), so that the `self` critic looks at the image;
5. each snapshot's baseline on the held-out prompts (shapes_eval, on CPU
   workers while the GPU trains); the chosen one goes to DIR with
   training.json (settings, seeds, times, accuracies, the self critic's
   agreement with the oracle on the drawn images, and how often it prefers a
   prompt's own render to a swapped one).

The shipped models are deliberately imperfect, so MILR has room to improve on
them: the chosen snapshot is the latest whose overall baseline lies in the
preset's band (--band overrides it). For janus-shapes the baseline climbs
steeply between LM steps 500 (~0.25) and 1000 (0.6-0.8; ~0.9 by step 2000),
and GPU kernels are not bit-for-bit deterministic, so reruns differ there: the
preset scores a snapshot every 50 steps from 550 on. The learning rate is
constant after warmup, so the snapshot at step S is the model that
`--lm-steps S` trains. On one H100 the janus-shapes run takes about 9 minutes
(VQ 3.5, LM 1, scoring 3); the scenes run is held to --budget seconds.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from milr_rewards_geneval.shapes import render
from milr_rewards_geneval.worlds import WORLDS
from transformers import JanusForConditionalGeneration
from transformers.models.janus.processing_janus import DEFAULT_SYSTEM_PROMPT

from milr_core.hardware import pick_device

from .backbone import REASONING_INSTRUCTION, JanusBackbone
from .self_critic import DEFAULT_QUESTION
from .shapes_data import TRAIN_SEED, held_out, leaks, make_examples, reference_images, tokenizer_lines
from .shapes_eval import Evaluator, matched_vs_swapped, score_images, summarize
from .shapes_lm import build_rows, train_lm
from .shapes_vq import decode, encode, train_vq
from .tiny import build_processor, build_tokenizer, save_checkpoint, tiny_config
from .understanding import build_pairs, draw_pairs

PRESETS = {
    # 64 px, 8 px patches: 8 x 8 = 64 image tokens; about 13 M parameters, 26 MB in float16
    "full": {
        "world": "shapes", "image_size": 64, "patch_size": 8, "hidden_size": 384, "layers": 6, "heads": 6,
        "codebook_size": 512, "vq_channels": 32, "vq_multiplier": (1, 2, 2, 4), "vq_res_blocks": 1,
        "examples": 48_000, "vq_steps": 3000, "vq_batch": 128, "lm_steps": 1000, "batch": 256,
        "snapshots": tuple(range(550, 1000, 50)), "band": (0.35, 0.65),
    },
    # 128 px, 8 px patches: 16 x 16 = 256 image tokens; the understanding branch is trained on
    # question pairs and captions through a larger vision tower (2 layers of 128). The run is held
    # to --budget: snapshots every 300 steps, about the time 13 CPU workers need to score one
    "scenes": {
        "world": "scenes", "image_size": 128, "patch_size": 8, "hidden_size": 384, "layers": 6, "heads": 6,
        "codebook_size": 512, "vq_channels": 32, "vq_multiplier": (1, 2, 2, 4), "vq_res_blocks": 1,
        "vq_from": "janus-shapes", "vq_lr": 3e-4, "vision_hidden": 128, "vision_layers": 2, "vision_heads": 4,
        "examples": 32_000, "vq_steps": 600, "vq_batch": 64, "lm_steps": 4000, "batch": 256,
        "pairs": 32_000, "pair_batch": 64,
        "snapshots": tuple(range(900, 4000, 300)), "band": (0.3, 0.55),
    },
    # for tests: seconds on a CPU, draws noise
    "toy": {
        "world": "shapes", "image_size": 32, "patch_size": 8, "hidden_size": 64, "layers": 2, "heads": 4,
        "codebook_size": 64, "vq_channels": 32, "vq_multiplier": (1, 1, 1, 1), "vq_res_blocks": 0,
        "examples": 60, "vq_steps": 2, "vq_batch": 4, "lm_steps": 2, "batch": 4, "snapshots": (), "band": (0.35, 0.65),
    },
    # the scenes recipe at test scale, question pairs included
    "toy-scenes": {
        "world": "scenes", "image_size": 32, "patch_size": 8, "hidden_size": 64, "layers": 2, "heads": 4,
        "codebook_size": 64, "vq_channels": 32, "vq_multiplier": (1, 1, 1, 1), "vq_res_blocks": 0,
        "vision_hidden": 32, "vision_layers": 1, "vision_heads": 2,
        "examples": 60, "vq_steps": 2, "vq_batch": 4, "lm_steps": 2, "batch": 4, "pairs": 8, "pair_batch": 2,
        "snapshots": (), "band": (0.3, 0.55),
    },
}
TOKENIZER_VOCAB = 1024  # an upper bound: the BPE stops merging once every word of the world is one token
SHARD = "15MB"  # each weights file stays under the repository's 16 MiB limit
EXTRA_TEXTS = (
    REASONING_INSTRUCTION.format(prompt=""),
    DEFAULT_QUESTION.format(prompt=""),
    DEFAULT_SYSTEM_PROMPT.strip(),  # JanusProcessor puts it before text-mode chats
)


def shapes_config(tokenizer, preset: dict):
    """tiny_config at the preset's sizes, with a deeper VQ model than the random tiny one."""
    config = tiny_config(
        tokenizer,
        image_size=preset["image_size"],
        patch_size=preset["patch_size"],
        hidden_size=preset["hidden_size"],
        layers=preset["layers"],
        heads=preset["heads"],
        vocab_size=-(-len(tokenizer) // 64) * 64,
        codebook_size=preset["codebook_size"],
        vq_channels=preset["vq_channels"],
    )
    if len(preset["vq_multiplier"]) != len(config.vq_config.channel_multiplier):
        raise ValueError("vq_multiplier needs one entry per VQ level: log2(patch_size) + 1")
    config.vq_config.channel_multiplier = list(preset["vq_multiplier"])
    config.vq_config.num_res_blocks = preset["vq_res_blocks"]
    if "vision_hidden" in preset:
        vision = config.vision_config
        vision.hidden_size, vision.num_hidden_layers = preset["vision_hidden"], preset["vision_layers"]
        vision.num_attention_heads = preset["vision_heads"]
    return config


def start_vq(vq, source: str) -> None:
    """Load the VQ weights of a Janus checkpoint (a folder, or a backbone shipped in this package)."""
    path = Path(source)
    if not path.is_dir():
        path = Path(__file__).parent / "weights" / source
    donor = JanusForConditionalGeneration.from_pretrained(path, dtype=torch.float32).model.vqmodel
    vq.load_state_dict(donor.state_dict())


def pick(snapshots: list[dict], band: tuple[float, float]) -> dict:
    """The latest snapshot inside the band (the most trained: cleanest images), else the one
    nearest the band's middle."""
    inside = [s for s in snapshots if band[0] <= s["baseline"]["overall"] <= band[1]]
    if inside:
        return inside[-1]
    middle = sum(band) / 2
    return min(snapshots, key=lambda s: abs(s["baseline"]["overall"] - middle))


def train(args: argparse.Namespace, log=print) -> dict:
    preset = dict(PRESETS[args.preset])
    world = WORLDS[preset["world"]]
    for key in ("examples", "vq_steps", "vq_batch", "lm_steps", "pairs"):
        if getattr(args, key) is not None:
            preset[key] = getattr(args, key)
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for what autocast leaves in float32
    out, work = Path(args.out), Path(args.work or f"{args.out}.work")
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"preset": args.preset, "settings": preset, "device": str(device), "seeds": {}, "seconds": {}}
    clock = started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        report["seconds"][name] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    if preset["image_size"] != world.image_size and not args.preset.startswith("toy"):
        raise SystemExit(f"the {world.name} world renders at {world.image_size} px, the preset at {preset['image_size']}")
    held = held_out(args.eval_prompts, world)
    data = make_examples(preset["examples"], world, args.workers)
    leaked = leaks(data, held_out(world=world), world)
    if leaked:
        raise SystemExit(f"training data contain held-out prompts: {leaked[:5]}")
    if preset["image_size"] != world.image_size:  # toy presets: smaller renders of the same scenes
        data.images = np.stack([np.asarray(render(scene, preset["image_size"])) for scene in data.scenes])
    report["seeds"] = {"train_data": TRAIN_SEED, "held_out": world.held_out_seed, "init": args.seed}
    report["world"] = world.name
    report["data"] = {"examples": len(data), "distinct_prompts": len({r.prompt for r in data.records}), "leaks": 0}
    log(f"data: {len(data)} examples, {report['data']['distinct_prompts']} distinct prompts, no held-out leak")
    lap("data")

    tokenizer = build_tokenizer(TOKENIZER_VOCAB, tokenizer_lines(data, EXTRA_TEXTS))
    config = shapes_config(tokenizer, preset)
    torch.manual_seed(args.seed)
    model = JanusForConditionalGeneration(config).to(device)
    report["parameters"] = {
        "total": sum(p.numel() for p in model.parameters()),
        "vq": sum(p.numel() for p in model.model.vqmodel.parameters()),
        "language_model": sum(p.numel() for p in model.model.language_model.parameters()),
        "tokenizer": len(tokenizer),
    }
    log(f"model: {report['parameters']}")

    vq = model.model.vqmodel
    if preset.get("vq_from"):
        start_vq(vq, preset["vq_from"])
        report["vq_from"] = preset["vq_from"]
    report["vq"] = train_vq(
        vq, data.images, preset["vq_steps"], preset["vq_batch"], preset.get("vq_lr", 1e-3), args.seed, log
    )
    if held:
        reference = reference_images(held, world, preset["image_size"])
        report["vq"]["reference_accuracy"] = summarize(score_images(reference, held, world), world)["overall"]
        report["vq"]["reconstruction"] = summarize(score_images(decode(vq, encode(vq, reference)), held, world), world)
        log(f"vq reconstructions of held-out reference scenes, oracle: {report['vq']['reconstruction']}")
    lap("vq")

    tokens = encode(vq, data.images)
    with torch.no_grad():  # image-token inputs start as the codes the decoder reads
        model.model.generation_embeddings.weight.copy_(F.normalize(vq.quantize.embedding.weight, dim=-1))
    processor = build_processor(tokenizer, config)
    text_rows, image_rows = build_rows(JanusBackbone(model, processor, chat="template"), data.records, data.reasoning, tokens)
    text_rows, image_rows = text_rows.to(device), image_rows.to(device)
    log(f"rows: {len(text_rows)} reasoning + {len(image_rows)} image, length {text_rows.ids.shape[1]}")
    pairs = None
    if preset.get("pairs"):
        prompts, images, match = draw_pairs(world, data, preset["pairs"], args.seed)
        shown = torch.as_tensor(images, device=tokens.device)
        recon = np.concatenate([decode(vq, tokens[shown[i : i + 512]]) for i in range(0, len(shown), 512)])
        pairs = build_pairs(
            processor, [data.records[p].prompt for p in prompts], [data.reasoning[i] for i in images], recon, match
        ).to(device)
        report["pairs"] = {"pairs": len(pairs), "yes": int(match.sum()), "seed": args.seed}
        log(f"pairs: {len(pairs)} questions, {int(match.sum())} answered yes, and their images' captions")
    lap("rows")

    snapshots: list[dict] = []
    evaluator = Evaluator(held, args.eval_device, args.eval_workers, world=world, judge_self=pairs is not None)

    def on_snapshot(step: int, stats: dict) -> None:
        path = work / f"step-{step:06d}"
        save_checkpoint(copy.deepcopy(model).to(torch.float16), tokenizer, path, max_shard_size=SHARD)
        snapshots.append({"step": step, "path": str(path), "lm": stats})
        if held:
            evaluator.submit(str(path))  # scored beside the training that goes on

    steps = preset["lm_steps"]
    marks = tuple(int(s) for s in args.snapshots.split(",")) if args.snapshots else preset["snapshots"]
    seconds = None if args.budget is None else args.budget - args.eval_reserve - (time.perf_counter() - started)
    report["lm"] = train_lm(
        model, text_rows, image_rows, steps, preset["batch"], args.lr, args.seed,
        tuple(m for m in marks if m < steps) + (steps,), on_snapshot, seconds, log,
        pairs=pairs, pair_batch=preset.get("pair_batch", 0),
    )
    lap("lm")

    try:
        for snap in snapshots if held else ():
            results = evaluator.results(snap["path"])
            snap["baseline"] = summarize(results, world)
            (work / f"eval-step-{snap['step']:06d}.json").write_text(json.dumps(results, indent=1))
            log(f"baseline at step {snap['step']}: {snap['baseline']}")
    finally:
        evaluator.close()
    lap("eval")

    chosen = pick(snapshots, tuple(args.band or preset["band"])) if held else snapshots[-1]
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(chosen["path"], out)
    report["snapshots"] = [{k: v for k, v in s.items() if k != "path"} for s in snapshots]
    report["chosen_step"] = chosen["step"]
    report["baseline"] = chosen.get("baseline")
    if held and pairs is not None:
        chosen_model = JanusBackbone.from_pretrained(str(out), device="cpu", chat="template")
        report["self_matched_vs_swapped"] = matched_vs_swapped(chosen_model, held, world)
        log(f"self critic, matching against swapped renders: {report['self_matched_vs_swapped']}")
    report["files"] = {f.name: f.stat().st_size for f in sorted(out.iterdir())}
    report["command"] = "python -m milr_janus.train_shapes " + " ".join(sys.argv[1:])
    (out / "training.json").write_text(json.dumps(report, indent=1) + "\n")
    log(f"chose step {chosen['step']}: baseline {report['baseline']}; wrote {out}")
    return report


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m milr_janus.train_shapes", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for the chosen checkpoint (replaced)")
    ap.add_argument("--work", help="folder for snapshots and per-prompt results (default: OUT.work)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="full")
    ap.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when present)")
    ap.add_argument("--seed", type=int, default=0, help="weight initialisation and batch order")
    ap.add_argument("--examples", type=int, help="training examples (default: the preset's)")
    ap.add_argument("--vq-steps", type=int)
    ap.add_argument("--vq-batch", type=int)
    ap.add_argument("--lm-steps", type=int)
    ap.add_argument("--pairs", type=int, help="question pairs for the understanding branch (default: the preset's)")
    ap.add_argument("--lr", type=float, default=6e-4, help="language model learning rate")
    ap.add_argument("--snapshots", help="comma-separated LM steps to save and score besides the last "
                    "(default: the preset's)")
    ap.add_argument("--budget", type=float, help="seconds for the whole run: LM training stops early (with a "
                    "last snapshot) so that the run ends in time")
    ap.add_argument("--eval-reserve", type=float, default=60, help="seconds of --budget kept for the last scoring")
    ap.add_argument("--band", type=float, nargs=2, help="baseline range to choose from (default: the preset's)")
    ap.add_argument("--eval-prompts", type=int, default=200, help="score N held-out prompts (balanced over tags)")
    ap.add_argument("--eval-device", default="cpu", help="where snapshots are scored (beside the training)")
    ap.add_argument("--eval-workers", type=int, default=max(1, (os.cpu_count() or 1) - 4))
    ap.add_argument("--workers", type=int, default=None, help="processes making the data (default: all cores)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    train(parse(argv), log=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
