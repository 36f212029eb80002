"""`milr bench` throughput: one search at a time against many searches at once (issue 16).

Random weights of Janus-Pro-7B's shape (janus_step.build: the published text config, the real
384 px / 576-token vision and VQ parts; no download), bfloat16, the shapes benchmark's prompts,
MILR JOINT with K fixed, threshold 1.0 and the shapes oracle, so that every search runs all K
steps: fixed work. In one process on one GPU:
- the one-search-at-a-time runner (`Bench(slots=1, pool=False)`: each search's calls alone,
  as `milr bench` ran before) on the first --old-prompts prompts, after one warm-up prompt; its
  cost per search does not depend on how many searches follow, so images/s is its rate;
- the batched runner (`Bench()`: as many searches at once as the hardware module allows, their
  calls pooled) on all --prompts prompts, graph captures included.
It reports images/s, searches/hour, peak GPU memory, rows per batched call, the ratio, and the
projected wall time of GenEval's protocol (553 prompts x 4 searches, K = 10, no early stop)
from the batched rate on 1 GPU, and on N GPUs from the measured N-GPU speed-up.
With --gpus N it then runs itself under torchrun on N GPUs (every rank builds the same weights
from the same seed and runs its shard of the prompts, as `milr bench` shards them) and reports
the N-GPU wall time (first rank start to last rank end, after the weights are built) against the
one-GPU batched run. With --load-check it saves the weights as a checkpoint and loads it in a
fresh process through JanusBackbone.from_pretrained, reporting that process's peak host memory
(RSS) against the checkpoint's size.

    python benchmarks/bench_throughput.py --gpus 4 --load-check --out benchmarks/results/bench_throughput.json

`--shape tiny --device cpu --gpus 2` runs every part on the CPU (gloo) in a few minutes: a smoke test.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from janus_step import build  # noqa: E402  (random-weight Janus-Pro shapes)

GENEVAL_SEARCHES = 553 * 4
GENEVAL_STEPS = 10


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def models(args, device: str):
    from milr_rewards_geneval.plugin import HELD_OUT_SEED
    from milr_rewards_geneval.shapes import prompt_set
    from milr_rewards_geneval.shapes_oracle import ShapesOracle

    torch.manual_seed(0)  # the random weights: the same on every rank
    backbone = build(args.shape, device, torch.bfloat16 if device.startswith("cuda") else torch.float32)
    records = prompt_set(args.prompts, seed=HELD_OUT_SEED)  # `milr bench shapes`'s prompts, without entry points
    return backbone, ShapesOracle(), records


def settings(args, records):
    from milr_core.bench.runner import BenchSettings, mode_config
    from milr_core.config import RunConfig

    run = RunConfig(steps=args.steps, threshold=1.0, samples=1, seed=0, max_reasoning_tokens=args.reasoning_tokens)
    return BenchSettings(benchmark="shapes", prompts=len(records), prompts_sha256="-", mode="milr", images_per_prompt=1,
                         backbone=f"random-{args.shape}", critic="shapes-oracle", run=mode_config("milr", run, None))


def count_rows(backbone) -> list[int]:
    """Rows (images) of every draw_many call from now on."""
    rows: list[int] = []
    draw_many = backbone.draw_many

    def counted(jobs, **kw):
        rows.append(sum(j.rows for j in jobs))
        return draw_many(jobs, **kw)

    backbone.draw_many = counted
    return rows


def timed_bench(args, backbone, critic, records, indices, work: Path, device: str, **bench_kw) -> dict:
    """Run the prompts `indices` through a Bench; images/s over the whole run."""
    from milr_core.bench.layout import BenchDir
    from milr_core.bench.runner import Bench
    from milr_core.strategies import Joint

    shutil.rmtree(work, ignore_errors=True)
    bench = Bench(settings(args, records), records, BenchDir(work), backbone, critic, Joint(), **bench_kw)
    gpu = device.startswith("cuda")
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    start = time.perf_counter()
    bench.run_prompts(list(indices))
    sync(device)
    seconds = time.perf_counter() - start
    results = [json.loads((work / f"{i:05d}" / "result.json").read_text()) for i in indices]
    images = sum(s["images"] for r in results for s in r["samples"])
    out = {
        "searches": len(results), "images": images, "seconds": round(seconds, 2),
        "images_per_s": round(images / seconds, 4), "searches_per_hour": round(3600 * len(results) / seconds, 1),
        "slots": bench.slots, "pooled": bench.pool,
    }
    if gpu:
        out["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def one_gpu(args, device: str) -> dict:
    backbone, critic, records = models(args, device)
    res: dict = {"max_rows": backbone.max_rows()}
    work = args.work / "one-gpu"
    # warm-up: the one-row decoders' graphs, cuBLAS, the critic
    timed_bench(args, backbone, critic, records, [0], work / "warm", device, slots=1, pool=False)
    old = range(1, 1 + args.old_prompts)
    if old:
        res["one_at_a_time"] = timed_bench(args, backbone, critic, records, old, work / "old", device, slots=1, pool=False)
    backbone._decoders.clear()
    backbone._prompts.clear()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    rows = count_rows(backbone)
    res["batched"] = timed_bench(args, backbone, critic, records, range(args.prompts), work / "batched", device,
                                 pool=True)
    res["batched"]["rows_per_draw_call"] = {"max": max(rows), "mean": round(sum(rows) / len(rows), 2), "calls": len(rows)}
    if old:
        res["speedup_images_per_s"] = round(res["batched"]["images_per_s"] / res["one_at_a_time"]["images_per_s"], 2)
        # same prompts, same seeds: on the CPU the images would be byte-identical; here bfloat16 sums over
        # batches of other shapes move some sampled tokens. Count the final images that came out identical.
        same = sum((work / "old" / f"{i:05d}/samples/0000.png").read_bytes()
                   == (work / "batched" / f"{i:05d}/samples/0000.png").read_bytes() for i in old)
        res["identical_final_images_old_vs_batched"] = f"{same}/{len(old)}"
    return res


def worker(args) -> None:
    """One torchrun rank: build, wait for all, run this rank's shard batched, report times."""
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = f"cuda:{int(os.environ['LOCAL_RANK'])}" if args.device == "cuda" else "cpu"
    if args.device == "cuda":
        torch.cuda.set_device(device)
    backbone, critic, records = models(args, device)  # first: in a process group only rank 0 would save the tiny one
    dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    # warm-up, as the one-GPU run had: first kernels, cuBLAS, the critic
    timed_bench(args, backbone, critic, records, [rank], args.work / f"warm{rank}", device, slots=1, pool=False)
    dist.barrier()
    start = time.time()
    res = timed_bench(args, backbone, critic, records, range(rank, args.prompts, world), args.work / f"rank{rank}",
                      device, pool=args.device == "cuda")
    res.update(rank=rank, start=start, end=time.time())
    (args.work / f"rank{rank}.json").write_text(json.dumps(res))
    dist.barrier()
    dist.destroy_process_group()


def many_gpus(args) -> dict:
    for f in args.work.glob("rank*.json"):
        f.unlink()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.gpus),
           __file__, "--worker", *sys.argv[1:]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    ranks = [json.loads((args.work / f"rank{r}.json").read_text()) for r in range(args.gpus)]
    wall = max(r["end"] for r in ranks) - min(r["start"] for r in ranks)
    images = sum(r["images"] for r in ranks)
    return {
        "gpus": args.gpus, "wall_s": round(wall, 2), "images": images, "images_per_s": round(images / wall, 4),
        "searches_per_hour": round(3600 * args.prompts / wall, 1),
        "per_rank": [{k: r[k] for k in ("rank", "searches", "images", "seconds", "slots", "peak_gpu_gib") if k in r}
                     for r in ranks],
    }


LOAD = """
import sys, threading, time
from milr_janus.backbone import JanusBackbone

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

peak, done = [0], threading.Event()
def watch():  # anonymous memory is what a load costs; mapped file pages stay in the page cache
    while not done.is_set():
        peak[0] = max(peak[0], rss("RssAnon:"))
        time.sleep(0.02)
threading.Thread(target=watch, daemon=True).start()
before, t = rss("RssAnon:"), time.perf_counter()
b = JanusBackbone.from_pretrained(sys.argv[1], device=sys.argv[2], dtype="bfloat16")
seconds = time.perf_counter() - t
done.set()
peak[0] = max(peak[0], rss("RssAnon:"))
print(before, peak[0], rss("VmHWM:"), seconds, b.model.device, b.model.dtype)
"""


def load_check(args, device: str) -> dict:
    """Host memory of loading the saved weights onto the device, in a fresh process: peak anonymous
    memory (sampled every 20 ms) and peak resident size (VmHWM, which counts the file pages mapped
    while reading the safetensors too)."""
    from milr_janus.tiny import save_checkpoint

    folder = args.work / f"checkpoint-{args.shape}"
    backbone = build(args.shape, device, torch.bfloat16 if device.startswith("cuda") else torch.float32)
    save_checkpoint(backbone.model, backbone.tokenizer, folder)
    del backbone
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    done = subprocess.run([sys.executable, "-c", LOAD, str(folder), device], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    before, anon, hwm, seconds, where, dtype = done.stdout.split()[-6:]
    gib = 2**30
    return {"checkpoint_gib": round(size / gib, 2), "anon_before_load_gib": round(int(before) / gib, 2),
            "peak_anon_gib": round(int(anon) / gib, 2), "peak_rss_gib": round(int(hwm) / gib, 2),
            "load_s": round(float(seconds), 1), "loaded_on": where, "dtype": dtype}


def projection(images_per_s: float, speedup: float | None, gpus: int) -> dict:
    images = GENEVAL_SEARCHES * (1 + GENEVAL_STEPS)
    hours = images / images_per_s / 3600
    out = {"searches": GENEVAL_SEARCHES, "steps": GENEVAL_STEPS, "images": images, "hours_1_gpu": round(hours, 2)}
    if speedup:
        out[f"hours_{gpus}_gpus"] = round(hours / speedup, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="7b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--old-prompts", type=int, default=4, help="prompts for the one-at-a-time runner (after a warm-up)")
    ap.add_argument("--steps", type=int, default=2, help="K: every search runs all of them")
    ap.add_argument("--reasoning-tokens", type=int, default=64)
    ap.add_argument("--gpus", type=int, default=0, help="also run under torchrun on this many GPUs")
    ap.add_argument("--load-check", action="store_true")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "milr-throughput")
    ap.add_argument("--out", default="bench_throughput.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.worker:
        return worker(args)
    import transformers

    gpu = args.device == "cuda"
    res: dict = {
        "what": __doc__.strip().splitlines()[0],
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "gpus_on_host": torch.cuda.device_count() if gpu else 0,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()},
        "settings": {"shape": args.shape, "dtype": "bfloat16" if gpu else "float32", "prompts": args.prompts,
                     "old_prompts": args.old_prompts, "steps": args.steps, "threshold": 1.0, "samples": 1,
                     "max_reasoning_tokens": args.reasoning_tokens, "strategy": "joint", "critic": "shapes-oracle",
                     "compile": os.environ.get("MILR_COMPILE", "0")},
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }

    def save():
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")

    parts = [("one_gpu", lambda: one_gpu(args, "cuda:0" if gpu else "cpu"))]
    if args.gpus:
        parts.append((f"torchrun_{args.gpus}_gpus", lambda: many_gpus(args)))
    if args.load_check:
        parts.append(("load_check", lambda: load_check(args, "cuda:0" if gpu else "cpu")))
    for name, part in parts:
        t = time.perf_counter()
        try:
            res[name] = part()
        except Exception:  # keep what the other parts measured
            res[name] = {"error": traceback.format_exc()[-3000:]}
        res[name]["part_s"] = round(time.perf_counter() - t, 1)
        gc.collect()  # the part's models (count_rows makes a cycle) must leave GPU 0 before torchrun starts
        if gpu:
            torch.cuda.empty_cache()
        print(name, json.dumps(res[name]), flush=True)
        save()
    batched = res["one_gpu"].get("batched", {}).get("images_per_s")
    if batched:
        many = res.get(f"torchrun_{args.gpus}_gpus", {})
        speedup = many.get("images_per_s", 0) / batched if many.get("images_per_s") else None
        if speedup:
            res[f"speedup_{args.gpus}_gpus_vs_1"] = round(speedup, 2)
        res["geneval_projection"] = projection(batched, speedup, args.gpus)
    save()
    print(json.dumps({k: v for k, v in res.items() if k not in ("one_gpu",)}, indent=1))


if __name__ == "__main__":
    main()
