"""`milr bench` throughput: one search at a time against many searches at once (issue 16).

Random weights of Janus-Pro-7B's shape (janus_step.build: the published text config, the real
384 px / 576-token vision and VQ parts; no download), bfloat16, the shapes benchmark's prompts,
MILR JOINT with K fixed, threshold 1.0 and the shapes oracle, so that every search runs all K
steps: fixed work. In one process on one GPU:
- the one-search-at-a-time runner (`Bench(slots=1, pool=False)`: each search's calls alone,
  as `milr bench` ran before) on the first --old-prompts prompts, after one warm-up prompt; its
  cost per search does not depend on how many searches follow, so images/s is its rate;
- the batched runner (`Bench()`: as many searches at once as the hardware module allows, their
  calls pooled), after an untimed batched warm-up of the same slot count (its first calls capture
  the decoders' CUDA graphs of the batched shapes): steady-state work. Without --gpus it runs all
  --prompts prompts; with --gpus N it runs rank 0's shard of them, so that the one GPU does
  exactly the work that each GPU of the N-GPU run does.
It reports images/s, searches/hour, peak GPU memory, rows per batched call, the ratio, where the
time goes (backbone calls, policy heads, critic, the rest on the host; each timed call ends with
a device sync), and the projected wall time of GenEval's protocol (553 prompts x 4 searches,
K = 10, no early stop) from the batched rate on 1 GPU, and on N GPUs from the measured speed-up.
With --gpus N it first (while this process holds nothing on a GPU) runs itself under torchrun on N
GPUs (every rank builds the same weights from the same seed, warms up as the one-GPU run did, then
runs its shard of the prompts as `milr bench` shards them, --repeats times) and reports each
repeat's N-GPU wall time (first rank start to last rank end) and its speed-up over the one-GPU run,
with every rank's time split, GPU clocks and CPU affinity. Every process runs with the same number
of torch threads (the host's cores / N) so that the runs differ only in their GPUs; --pin also pins
each process to its own disjoint 1/N of the cores. With --load-check it saves the weights as a
checkpoint and loads it in a fresh process through JanusBackbone.from_pretrained, reporting that
process's peak host memory against the checkpoint's size.

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
import threading
import time
import traceback
from contextlib import contextmanager, nullcontext
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

    # ceil prefixes: at least one token per group, so that every search runs all K steps on any shape
    # (the paper's int rule leaves tiny's image prefix empty, and then no search runs)
    run = RunConfig(steps=args.steps, threshold=1.0, samples=1, seed=0, max_reasoning_tokens=args.reasoning_tokens,
                    prefix_rule="ceil")
    return BenchSettings(benchmark="shapes", prompts=len(records), prompts_sha256="-", mode="milr", images_per_prompt=1,
                         backbone=f"random-{args.shape}", critic="shapes-oracle", run=mode_config("milr", run, None))


#: What the timers split a run into: the backbone's batched calls, the policy heads that the
#: engine's gradient steps go through, and the critic; the rest of the run's time is host work.
TIMED = {"reason_many": "backbone", "draw_many": "backbone", "decode": "backbone",
         "text_logits": "backbone", "image_logits": "backbone", "score": "critic"}


@contextmanager
def watched(backbone, critic, device: str):
    """Yields (seconds per timed method, rows of every draw_many call, the decoders (rows x
    positions) built and used) for the calls made inside;
    each timed call ends with a device sync, so that its GPU work is counted where it was asked for."""
    seconds = {name: 0.0 for name in TIMED}
    rows: list[int] = []
    owners = {"backbone": backbone, "critic": critic}

    def timer(name, method):
        def timed(*a, **kw):
            if name == "draw_many":
                rows.append(sum(j.rows for j in a[0]))
            sync(device)
            t = time.perf_counter()
            out = method(*a, **kw)
            sync(device)
            seconds[name] += time.perf_counter() - t
            return out
        return timed

    def decoder(n: int, length: int):
        # one not among the backbone's few kept decoders is built anew: its KV cache, and on a GPU its graph capture
        if (n, length) not in backbone._decoders:
            decoders["built"].append(f"{n}x{length}")
        if f"{n}x{length}" not in decoders["shapes_used"]:
            decoders["shapes_used"].append(f"{n}x{length}")
        return make_decoder(n, length)

    for name, owner in TIMED.items():
        setattr(owners[owner], name, timer(name, getattr(owners[owner], name)))
    decoders: dict[str, list] = {"built": [], "shapes_used": []}
    make_decoder = backbone._decoder
    backbone._decoder = decoder
    try:
        yield seconds, rows, decoders
    finally:
        for name, owner in TIMED.items():
            delattr(owners[owner], name)  # the class's method again
        del backbone._decoder


def nvidia_smi(device: str) -> dict | str:
    """This GPU's clocks, temperature and power now (nvidia-smi, addressed by PCI bus id)."""
    fields = "index,pci.bus_id,clocks.sm,clocks.max.sm,temperature.gpu,power.draw,utilization.gpu"
    try:
        out = subprocess.run(["nvidia-smi", "-i", pci_address(device), f"--query-gpu={fields}",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired, AttributeError) as exc:  # AttributeError: a torch without PCI ids
        return f"nvidia-smi: {exc}"
    if out.returncode != 0:
        return f"nvidia-smi: {out.stdout.strip() or out.stderr.strip()}"
    return dict(zip(fields.split(","), (v.strip() for v in out.stdout.strip().split(","))))


class ClockWatch:
    """nvidia-smi every 2 s during a timed run: the lowest and mean SM clock, the hottest and the
    most power, so that a GPU that throttled mid-run shows as such."""

    def __init__(self, device: str):
        self.device, self.samples, self.done = device, [], threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self.done.wait(2.0):
            state = nvidia_smi(self.device)
            if isinstance(state, dict):
                self.samples.append(state)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()

    def summary(self) -> dict:
        def numbers(key):
            out = []
            for s in self.samples:
                try:
                    out.append(float(s[key]))
                except (KeyError, ValueError):  # a column nvidia-smi left out, "[N/A]"
                    pass
            return out

        clocks = numbers("clocks.sm")
        return {"samples": len(self.samples), "sm_mhz_min": min(clocks, default=None),
                "sm_mhz_mean": round(sum(clocks) / len(clocks)) if clocks else None,
                "temperature_max": max(numbers("temperature.gpu"), default=None),
                "power_w_max": max(numbers("power.draw"), default=None)}


def timed_bench(args, backbone, critic, records, indices, work: Path, device: str, **bench_kw) -> dict:
    """Run the prompts `indices` through a Bench; images/s over the whole run, and where its time went."""
    from milr_core.bench.layout import BenchDir
    from milr_core.bench.runner import Bench
    from milr_core.strategies import Joint

    shutil.rmtree(work, ignore_errors=True)
    backbone._prompts.clear()  # no run reuses an earlier run's prompt KV (the warm-up's, a repeat's)
    bench = Bench(settings(args, records), records, BenchDir(work), backbone, critic, Joint(), **bench_kw)
    gpu = device.startswith("cuda")
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    clocks = ClockWatch(device) if gpu else nullcontext()
    with watched(backbone, critic, device) as (seconds_by_call, rows, decoders), clocks as watch:
        sync(device)
        start, wall = time.perf_counter(), time.time()
        bench.run_prompts(list(indices))
        sync(device)
        seconds = time.perf_counter() - start
    results = [json.loads((work / f"{i:05d}" / "result.json").read_text()) for i in indices]
    images = sum(s["images"] for r in results for s in r["samples"])
    out = {
        "searches": len(results), "images": images, "seconds": round(seconds, 2),
        "images_per_search": round(images / len(results), 2),
        "images_per_s": round(images / seconds, 4), "searches_per_hour": round(3600 * len(results) / seconds, 1),
        "slots": bench.slots, "pooled": bench.pool, "start": wall, "end": wall + seconds,
        "rows_per_draw_call": {"max": max(rows), "mean": round(sum(rows) / len(rows), 2), "calls": len(rows)},
        "seconds_in": {**{k: round(v, 2) for k, v in seconds_by_call.items()},
                       "host": round(seconds - sum(seconds_by_call.values()), 2)},
        "decoders": decoders,
    }
    if gpu:
        out["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["gpu_during"] = watch.summary()
    return out


def warm_batched(args, backbone, critic, records, indices, work: Path, device: str, slots: int) -> float:
    """One untimed batched run of `slots` of these prompts: the batched shapes' first calls (CUDA graph
    captures, first kernels) happen here, so that the timed run is steady-state work."""
    t = time.perf_counter()
    timed_bench(args, backbone, critic, records, list(indices)[:slots], work, device, slots=slots, pool=True)
    return round(time.perf_counter() - t, 1)


def cpu_share(index: int, count: int, pin: bool) -> dict:
    """The same CPU resources for every process: torch threads = the host's cores / count, and with
    `pin` this process on its own disjoint `index`-th share of the cores."""
    cores = sorted(os.sched_getaffinity(0))
    share = max(1, len(cores) // count)
    mine = cores[index * share : (index + 1) * share] or cores
    if pin:
        os.sched_setaffinity(0, mine)
    torch.set_num_threads(share)
    affinity = ranges(sorted(os.sched_getaffinity(0)))
    return {"pinned": pin, "torch_threads": torch.get_num_threads(), "affinity": affinity}


def ranges(cores: list[int]) -> str:
    """0-15,32-47: a core list as the kernel writes it."""
    out, start = [], None
    for i, c in enumerate(cores):
        start = c if start is None else start
        if i + 1 == len(cores) or cores[i + 1] != c + 1:
            out.append(f"{start}-{c}" if c != start else str(c))
            start = None
    return ",".join(out)


def pci_address(device: str) -> str:
    """The GPU's PCI address (0000:19:00.0): how nvidia-smi and sysfs name the GPU that torch calls `device`
    (their numbering need not follow torch's)."""
    p = torch.cuda.get_device_properties(device)
    return f"{p.pci_domain_id:04x}:{p.pci_bus_id:02x}:{p.pci_device_id:02x}.0"


def gpu_cores(device: str) -> str | None:
    """The CPU cores local to this GPU (its NUMA node), from sysfs; None where not exposed."""
    try:
        path = Path(f"/sys/bus/pci/devices/{pci_address(device)}/local_cpulist")
    except AttributeError:  # a torch without PCI ids
        return None
    return path.read_text().strip() if path.exists() else None


def one_gpu(args, backbone, critic, records, device: str) -> dict:
    gpu = device.startswith("cuda")
    slots = backbone.max_rows()  # what Bench() picks at one sample per search
    res: dict = {"max_rows": slots, "cpu": cpu_share(0, max(1, args.gpus), args.pin)}
    work = args.work / "one-gpu"
    old = range(1, 1 + args.old_prompts)
    if old:
        # warm-up: the one-row decoders' graphs, cuBLAS, the critic
        timed_bench(args, backbone, critic, records, [0], work / "warm-old", device, slots=1, pool=False)
        res["one_at_a_time"] = timed_bench(args, backbone, critic, records, old, work / "old", device,
                                           slots=1, pool=False)
        backbone._decoders.clear()  # their KV caches: room for the batched decoders
        if gpu:
            torch.cuda.empty_cache()
    mine = range(0, args.prompts, args.gpus) if args.gpus else range(args.prompts)  # rank 0's shard
    if gpu:
        res["gpu_at_start"] = nvidia_smi(device)
    res["warm_up_s"] = warm_batched(args, backbone, critic, records, mine, work / "warm", device, slots)
    res["batched"] = timed_bench(args, backbone, critic, records, mine, work / "batched", device,
                                 slots=slots, pool=True)
    if gpu:
        res["gpu_at_end"] = nvidia_smi(device)
    if old:
        res["speedup_images_per_s"] = round(res["batched"]["images_per_s"] / res["one_at_a_time"]["images_per_s"], 2)
        # same prompts, same seeds: on the CPU the images would be byte-identical; here bfloat16 sums over
        # batches of other shapes move some sampled tokens. Count the final images that came out identical.
        same = sum((work / "old" / f"{i:05d}/samples/0000.png").read_bytes()
                   == (work / "batched" / f"{i:05d}/samples/0000.png").read_bytes() for i in old if i in mine)
        res["identical_final_images_old_vs_batched"] = f"{same}/{sum(i in mine for i in old)}"
    return res


def worker(args) -> None:
    """One torchrun rank; its traceback, if any, goes to rankN.error (torchrun's own report names
    only the exit code)."""
    rank = int(os.environ["RANK"])
    try:
        rank_run(args, rank, int(os.environ["WORLD_SIZE"]))
    except BaseException:
        (args.work / f"rank{rank}.error").write_text(traceback.format_exc())
        raise


def rank_run(args, rank: int, world: int) -> None:
    """Build, warm up as the one-GPU run did, then --repeats times: wait for all, run this rank's
    shard batched, report times."""
    import torch.distributed as dist

    gpu = args.device == "cuda"
    device = f"cuda:{int(os.environ['LOCAL_RANK'])}" if gpu else "cpu"
    cpu = cpu_share(rank, world, args.pin)  # before any thread starts: they inherit the affinity
    if gpu:
        torch.cuda.set_device(device)
        cpu["gpu_local_cores"] = gpu_cores(device)
    backbone, critic, records = models(args, device)  # first: in a process group only rank 0 would save the tiny one
    dist.init_process_group("nccl" if gpu else "gloo")
    mine = range(rank, args.prompts, world)
    slots = backbone.max_rows()
    info = {"rank": rank, "cpu": cpu, "gpu": torch.cuda.get_device_name(device) if gpu else "cpu",
            "gpu_at_start": nvidia_smi(device) if gpu else None,
            "warm_up_s": warm_batched(args, backbone, critic, records, mine, args.work / f"warm{rank}", device, slots)}
    repeats = []
    for r in range(args.repeats):
        dist.barrier()
        repeats.append(timed_bench(args, backbone, critic, records, mine, args.work / f"rank{rank}-{r}", device,
                                   slots=slots, pool=True))
    info["gpu_at_end"] = nvidia_smi(device) if gpu else None
    (args.work / f"rank{rank}.json").write_text(json.dumps({**info, "repeats": repeats}))
    dist.barrier()
    dist.destroy_process_group()


def many_gpus(args) -> dict:
    for f in [*args.work.glob("rank*.json"), *args.work.glob("rank*.error")]:
        f.unlink()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.gpus),
           __file__, "--worker", *sys.argv[1:]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [f"{f.stem}: {f.read_text()[-2500:]}" for f in sorted(args.work.glob("rank*.error"))]
        raise RuntimeError("\n".join(errors) or done.stderr[-3000:])
    ranks = [json.loads((args.work / f"rank{r}.json").read_text()) for r in range(args.gpus)]
    repeats = []
    for r in range(args.repeats):
        runs = [rank["repeats"][r] for rank in ranks]
        first = min(x["start"] for x in runs)
        wall = max(x["end"] for x in runs) - first
        images = sum(x["images"] for x in runs)
        repeats.append({
            "wall_s": round(wall, 2), "images": images, "images_per_s": round(images / wall, 4),
            "searches_per_hour": round(3600 * sum(x["searches"] for x in runs) / wall, 1),
            # a rank that started late was let go late by the barrier: that part of its lag is not its GPU's
            "per_rank": [{"started_after_s": round(x["start"] - first, 3),
                          **{k: v for k, v in x.items() if k not in ("start", "end")}} for x in runs],
        })
    keep = ("rank", "cpu", "gpu", "gpu_at_start", "gpu_at_end", "warm_up_s")
    return {"gpus": args.gpus, "repeats": repeats, "ranks": [{k: rank[k] for k in keep} for rank in ranks]}


LOAD = """
import sys, threading, time
import torch
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
on_gpu = torch.cuda.memory_allocated() if torch.cuda.is_available() else 0
print(before, peak[0], rss("VmHWM:"), on_gpu, seconds, b.model.device, b.model.dtype)
"""


def save_weights(args, backbone) -> dict:
    """The one-GPU run's weights as a checkpoint for load_check (saved while that run's model is
    still built, and loaded once it has left the GPU)."""
    from milr_janus.tiny import save_checkpoint

    folder = args.work / f"checkpoint-{args.shape}"
    shutil.rmtree(folder, ignore_errors=True)
    t = time.perf_counter()
    save_checkpoint(backbone.model, backbone.tokenizer, folder)
    return {"folder": str(folder), "save_s": round(time.perf_counter() - t, 1)}


def load_check(args, saved: dict, device: str) -> dict:
    """Host memory of loading the saved weights onto the device, in a fresh process: peak anonymous
    memory (sampled every 20 ms) and peak resident size (VmHWM, which counts the file pages mapped
    while reading the safetensors too)."""
    folder = Path(saved.pop("folder"))
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    done = subprocess.run([sys.executable, "-c", LOAD, str(folder), device], capture_output=True, text=True)
    shutil.rmtree(folder, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    before, anon, hwm, on_gpu, seconds, where, dtype = done.stdout.split()[-7:]
    gib = 2**30
    return {
        "what": "JanusBackbone.from_pretrained(checkpoint, device, dtype='bfloat16') in a fresh process (transformers "
                "from_pretrained with device_map=device where it is a GPU): its host memory while loading. "
                "peak_anon_gib: the peak of RssAnon (heap and other anonymous memory: what a load pays in host RAM), "
                "sampled every 20 ms, including torch's and CUDA's own start-up; peak_rss_gib: VmHWM, the peak "
                "resident size, which also counts the checkpoint's file pages mapped while reading (page cache, "
                "reclaimable); device_gib: the memory torch holds on the device after the load; load_s: from a "
                "warm page cache (the checkpoint was just written).",
        "checkpoint_gib": round(size / gib, 2), **saved,
        "anon_before_load_gib": round(int(before) / gib, 2), "peak_anon_gib": round(int(anon) / gib, 2),
        "peak_anon_over_checkpoint": round(int(anon) / size, 3), "peak_rss_gib": round(int(hwm) / gib, 2),
        "device_gib": round(int(on_gpu) / gib, 2), "load_s": round(float(seconds), 1), "loaded_on": where,
        "dtype": dtype,
    }


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
    ap.add_argument("--prompts", type=int, default=64,
                    help="with --gpus N: all ranks' prompts; the one GPU runs rank 0's share")
    ap.add_argument("--old-prompts", type=int, default=4, help="prompts for the one-at-a-time runner (after a warm-up)")
    ap.add_argument("--steps", type=int, default=2, help="K: every search runs all of them")
    ap.add_argument("--reasoning-tokens", type=int, default=64)
    ap.add_argument("--gpus", type=int, default=0, help="also run under torchrun on this many GPUs")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of the N-GPU part, one after another")
    ap.add_argument("--pin", action="store_true", help="pin each process to its own 1/N of the CPU cores")
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
    device = "cuda:0" if gpu else "cpu"
    res: dict = {
        "what": __doc__.strip().splitlines()[0],
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "gpus_on_host": torch.cuda.device_count() if gpu else 0,
        "cpu_cores": len(os.sched_getaffinity(0)),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()},
        "settings": {"shape": args.shape, "dtype": "bfloat16" if gpu else "float32", "prompts": args.prompts,
                     "old_prompts": args.old_prompts, "steps": args.steps, "threshold": 1.0, "samples": 1,
                     "max_reasoning_tokens": args.reasoning_tokens, "prefix_rule": "ceil", "strategy": "joint",
                     "critic": "shapes-oracle",
                     "compile": os.environ.get("MILR_COMPILE", "0"), "repeats": args.repeats, "pin": args.pin},
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }
    if args.gpus:
        res["fairness"] = (f"every GPU does the same work: the one-GPU run does rank 0's shard of the {args.prompts} "
                           f"prompts, each of the {args.gpus} ranks its own shard; both warm up the same way (one "
                           "untimed batched run of the same slot count) and run with the same torch threads "
                           "(cores / N), so the speed-up is N-GPU images/s over one-GPU images/s of steady-state work")

    def save():
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")

    def run(name, part):
        t = time.perf_counter()
        try:
            res[name] = part()
        except Exception:  # keep what the other parts measured
            res[name] = {"error": traceback.format_exc()[-3000:]}
        res[name]["part_s"] = round(time.perf_counter() - t, 1)
        print(name, json.dumps(res[name]), flush=True)
        save()

    many = f"torchrun_{args.gpus}_gpus"
    if args.gpus:  # first, while this process holds nothing on GPU 0 beside rank 0
        run(many, lambda: many_gpus(args))
    t = time.perf_counter()
    backbone, critic, records = models(args, device)
    res["build_s"] = round(time.perf_counter() - t, 1)
    run("one_gpu", lambda: one_gpu(args, backbone, critic, records, device))
    if args.load_check:
        run("load_check", lambda: save_weights(args, backbone))
    del backbone, critic
    gc.collect()  # the weights must leave the GPU before the load check's process loads them
    if gpu:
        torch.cuda.empty_cache()
    if "folder" in res.get("load_check", {}):
        run("load_check", lambda: load_check(args, res["load_check"], device))
    batched = res["one_gpu"].get("batched", {}).get("images_per_s")
    if batched:
        speedups = [round(r["images_per_s"] / batched, 2) for r in res.get(many, {}).get("repeats", [])]
        if speedups:
            res[f"speedup_{args.gpus}_gpus_vs_1"] = speedups
        res["geneval_projection"] = projection(batched, min(speedups) if speedups else None, args.gpus)
    save()
    print(json.dumps({k: v for k, v in res.items() if k not in ("one_gpu",)}, indent=1))


if __name__ == "__main__":
    main()
