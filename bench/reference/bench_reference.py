#!/usr/bin/python3
"""Times Meta's SAM 2.1 Python code on this machine's CPU, the stages of
/work/shared/bench/reference-cpu.json, so that sam2d's figures can be compared
with the reference on the same machine.

Meta's code is NOT part of this repository: export it (setup in README.md) into
an ignored folder and pass that folder with --sam2-root (default: <repo>/ref).

Modes:
  --stage tiny_image | tiny_video | large_image   one measurement in this process,
                                                  prints one JSON line
  --all [--prefix "chrt -f 10"]                  every stage in its own child
                                                  process, writes the combined JSON

The model is built without hydra (not packaged in Debian): the YAML config is read
with omegaconf, the same overrides as Meta's build functions are applied, and the
`_target_` classes are instantiated by instantiate() below. Weights are PyTorch's
default random initialisation (seeded); no checkpoint is read.
"""
import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

CONFIGS = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}

# What Meta's build functions add on the command line of hydra (build_sam.py at
# commit 2b90b9f): the post-processing flags, and the video predictor class.
IMAGE_OVERRIDES = {
    "sam_mask_decoder_extra_args": {
        "dynamic_multimask_via_stability": True,
        "dynamic_multimask_stability_delta": 0.05,
        "dynamic_multimask_stability_thresh": 0.98,
    },
}
VIDEO_OVERRIDES = dict(
    IMAGE_OVERRIDES,
    _target_="sam2.sam2_video_predictor.SAM2VideoPredictor",
    binarize_mask_from_pts_for_mem_enc=True,
    fill_hole_area=8,
)

SHIMS = []


def install_shims(torch):
    """Makes Meta's code import and run on Debian's torch 1.13 without hydra/iopath."""
    # sam2/__init__.py asks hydra to register its config module: a no-op here,
    # since configs are read directly from the YAML files.
    hydra = types.ModuleType("hydra")
    hydra.initialize_config_module = lambda *a, **k: None
    hydra.compose = None
    core = types.ModuleType("hydra.core")
    gh = types.ModuleType("hydra.core.global_hydra")

    class _GlobalHydra:
        @staticmethod
        def instance():
            return _GlobalHydra()

        def is_initialized(self):
            return True

    gh.GlobalHydra = _GlobalHydra
    utils = types.ModuleType("hydra.utils")
    utils.instantiate = None
    hydra.core, core.global_hydra, hydra.utils = core, gh, utils
    sys.modules.update({"hydra": hydra, "hydra.core": core,
                        "hydra.core.global_hydra": gh, "hydra.utils": utils})
    SHIMS.append("stub module `hydra` (config registration is a no-op; the model is built "
                 "from the YAML by this script's own _target_ instantiator)")

    # hieradet.py imports iopath's path manager; it is only used to read pretrained
    # trunk weights, which a random-weight run never does.
    try:
        import iopath.common.file_io  # noqa: F401
    except ImportError:
        mods = {n: types.ModuleType(n) for n in
                ("iopath", "iopath.common", "iopath.common.file_io")}
        mods["iopath.common.file_io"].g_pathmgr = types.SimpleNamespace(open=open)
        sys.modules.update(mods)
        SHIMS.append("stub module `iopath.common.file_io.g_pathmgr` (used only for "
                     "pretrained trunk weights, never here)")

    F = torch.nn.functional
    if not hasattr(F, "scaled_dot_product_attention"):
        def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
            # Plain attention in float32, the maths of torch 2's SDPA for the
            # arguments SAM 2 uses in eval mode (no mask, no dropout, default scale).
            assert attn_mask is None and not is_causal and dropout_p == 0.0
            s = (1.0 / q.shape[-1] ** 0.5) if scale is None else scale
            w = torch.matmul(q, k.transpose(-2, -1)) * s
            return torch.matmul(torch.softmax(w, dim=-1), v)

        F.scaled_dot_product_attention = sdpa
        SHIMS.append("torch.nn.functional.scaled_dot_product_attention (absent in torch 1.13) "
                     ":= softmax((q @ k^T) * (1/sqrt(head_dim)), dim=-1) @ v, float32, "
                     "materialising the full score matrix")


def instantiate(node):
    """Builds the object a config node describes: dicts with `_target_` become
    calls of that class with their other keys (built first), lists and plain
    dicts are built element by element."""
    import importlib
    if isinstance(node, dict):
        kwargs = {k: instantiate(v) for k, v in node.items() if k != "_target_"}
        target = node.get("_target_")
        if target is None:
            return kwargs
        mod_name, _, attr = target.rpartition(".")
        return getattr(importlib.import_module(mod_name), attr)(**kwargs)
    if isinstance(node, list):
        return [instantiate(v) for v in node]
    return node


def merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = v


def build(sam2_root, size, video, seed=0):
    import torch
    from omegaconf import OmegaConf
    cfg = OmegaConf.load(os.path.join(sam2_root, "sam2", CONFIGS[size]))
    OmegaConf.resolve(cfg)
    model_cfg = OmegaConf.to_container(cfg, resolve=True)["model"]
    merge(model_cfg, VIDEO_OVERRIDES if video else IMAGE_OVERRIDES)
    torch.manual_seed(seed)
    model = instantiate(model_cfg)
    return model.to("cpu").eval()


def vm_hwm_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_video(folder, frames=16, w=640, h=480):
    """Synthetic 640x480 JPEGs: a textured background and two moving shapes."""
    import numpy as np
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (w + h)) + 64], -1)
    noise = rng.integers(-12, 13, size=(h, w, 3))
    for t in range(frames):
        img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
        d = ImageDraw.Draw(img)
        cx, cy = 200 + 12 * t, 240 + 4 * t
        d.ellipse([cx - 80, cy - 60, cx + 80, cy + 60], fill=(230, 40, 40))
        d.rectangle([420 - 6 * t, 80, 520 - 6 * t, 200], fill=(30, 200, 60))
        img.save(os.path.join(folder, "%05d.jpg" % t), quality=90)


def stage_image(args, size):
    import torch
    model = build(args.sam2_root, size, video=False)
    x = torch.randn(1, 3, model.image_size, model.image_size,
                    generator=torch.Generator().manual_seed(2))
    times, cpu = [], []
    with torch.inference_mode():
        for i in range(args.warmup + args.runs):
            c0, t0 = time.process_time(), time.perf_counter()
            model.forward_image(x)
            t1, c1 = time.perf_counter(), time.process_time()
            if i >= args.warmup:
                times.append(t1 - t0)
                cpu.append(c1 - c0)
    return {
        "model": "sam2.1_hiera_" + size,
        "stage": "image encoder (forward_image, 1x3x%dx%d)" % (model.image_size, model.image_size),
        "median_s": statistics.median(times),
        "runs": args.runs,
        "warmup": args.warmup,
        "runs_s": times,
        "cpu_s_median": statistics.median(cpu),
        "peak_rss_gb": vm_hwm_bytes() / 1e9,
    }


def stage_video(args):
    import torch
    predictor = build(args.sam2_root, "tiny", video=True)
    with tempfile.TemporaryDirectory() as folder:
        make_video(folder, frames=args.frames)
        t0 = time.perf_counter()
        state = predictor.init_state(video_path=folder)
        init_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1,
                                        points=[[320.0, 240.0]], labels=[1])
        click_s = time.perf_counter() - t0

        # The same click again (it replaces the first: same point, same work on the
        # cached frame 0 features): a median instead of the single first-click figure.
        clicks = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1,
                                            points=[[320.0, 240.0]], labels=[1])
            clicks.append(time.perf_counter() - t0)

        # Per frame: the time from one yielded frame to the next, i.e. everything the
        # generator does for that frame (encoder, memory attention, heads, memory
        # encoder, video-resolution resize). Frame 0 includes the preflight.
        per_frame, cpu_frame = {}, {}
        c_prev, t_prev = time.process_time(), time.perf_counter()
        for frame_idx, _obj_ids, _masks in predictor.propagate_in_video(state):
            t, c = time.perf_counter(), time.process_time()
            per_frame[frame_idx] = t - t_prev
            cpu_frame[frame_idx] = c - c_prev
            t_prev, c_prev = time.perf_counter(), time.process_time()
    full = [i for i in sorted(per_frame) if i >= predictor.num_maskmem + 1]
    return {
        "model": "sam2.1_hiera_tiny",
        "stage": "propagate_in_video per frame, full memory bank (frames %d-%d of a %d-frame "
                 "640x480 JPEG video, 1 object clicked on frame 0)" % (full[0], full[-1], args.frames),
        "median_s": statistics.median(per_frame[i] for i in full),
        "peak_rss_gb": vm_hwm_bytes() / 1e9,
        "init_state_s": init_s,
        "first_click_s": click_s,
        "click_cached_median_s": statistics.median(clicks),
        "clicks_s": clicks,
        "frames_s": {str(i): per_frame[i] for i in sorted(per_frame)},
        "cpu_s_median": statistics.median(cpu_frame[i] for i in full),
    }


def run_stage(args):
    import torch
    install_shims(torch)
    sys.path.insert(0, args.sam2_root)
    os.chdir(args.sam2_root)  # Meta's build code refuses to run from the repo's parent
    torch.set_num_threads(args.threads)
    if args.stage == "tiny_image":
        r = stage_image(args, "tiny")
    elif args.stage == "large_image":
        r = stage_image(args, "large")
    else:
        r = stage_video(args)
    r["threads"] = torch.get_num_threads()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    r["process_user_s"], r["process_sys_s"] = ru.ru_utime, ru.ru_stime
    r["shims"] = SHIMS
    print(json.dumps(r))


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


def machine():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = info.get("Flags", "").split()
    keep = [f for f in flags if f.startswith(("avx", "amx", "fma"))]
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "model_name": info.get("Model name"),
        "cpus": info.get("CPU(s)"),
        "hypervisor": info.get("Hypervisor vendor"),
        "bogomips": info.get("BogoMIPS"),
        "vector_flags": " ".join(keep),
        "memory_gib": round(mem_kb / 2**20, 1),
        "os": platform.platform(),
    }


def software():
    import torch
    import numpy
    import PIL
    cfg = torch.__config__.show()
    cap = [l.strip() for l in cfg.splitlines() if "CPU capability" in l]
    blas = subprocess.run(["readlink", "-f", "/usr/lib/x86_64-linux-gnu/libblas.so.3"],
                          capture_output=True, text=True).stdout.strip()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cpu_capability": cap[0] if cap else None,
        "libblas.so.3": blas,
        "numpy": numpy.__version__,
        "Pillow": PIL.__version__,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "glibc_malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
    }


def git_commit(root):
    try:
        return subprocess.run(["git", "--git-dir", os.path.join(root, ".git"), "rev-parse", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or None
    except OSError:
        return None


def run_all(args):
    results, runs = [], []
    for stage in args.stages.split(","):
        cmd = shlex.split(args.prefix) + [sys.executable, os.path.abspath(__file__),
                                          "--stage", stage, "--sam2-root", args.sam2_root,
                                          "--threads", str(args.threads), "--runs", str(args.runs),
                                          "--warmup", str(args.warmup), "--frames", str(args.frames)]
        la0, t0 = loadavg(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        p = subprocess.run(cmd, capture_output=True, text=True)
        la1 = loadavg()
        if p.returncode != 0:
            sys.stderr.write(p.stderr)
            sys.exit("stage %s failed (exit %d)" % (stage, p.returncode))
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r["started"] = t0
        r["loadavg_before"], r["loadavg_after"] = la0, la1
        print(json.dumps(r), flush=True)
        results.append(r)
    shims = results[0].pop("shims", []) if results else []
    for r in results[1:]:
        r.pop("shims", None)
    out = {
        "what": "Meta's SAM 2.1 reference (facebookresearch/sam2 %s) on this machine, float32, "
                "measured by bench/reference/bench_reference.py, each stage in its own process"
                % (args.sam2_commit or "(commit unknown)"),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "software": software(),
        "threads": args.threads,
        "priority": args.prefix or "normal (nice 0)",
        "weights": "random default init of the real configs (torch.manual_seed(0)), no checkpoint",
        "shims": shims,
        "results": results,
    }
    text = json.dumps(out, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


def combine(args):
    """Summarises several --all results (repeats on a shared machine): per stage,
    the median of the repeats' medians, with every repeat kept under "repeats"."""
    docs = [json.load(open(f)) for f in args.combine]
    summary = []
    for i, first in enumerate(docs[0]["results"]):
        rs = [d["results"][i] for d in docs]
        s = {"model": first["model"], "stage": first["stage"]}
        for key in ("median_s", "peak_rss_gb", "init_state_s", "first_click_s",
                    "click_cached_median_s", "cpu_s_median"):
            vals = [r[key] for r in rs if key in r]
            if vals:
                s[key] = round(statistics.median(vals), 4)
                s[key + "_repeats"] = [round(v, 4) for v in vals]
        if "runs" in first:
            s["runs"] = first["runs"]
        s["statistic"] = ("median over %d repeats (separate processes, different times) of each "
                          "repeat's median" % len(rs))
        summary.append(s)
    out = {k: docs[-1][k] for k in ("what", "machine", "software", "threads", "priority",
                                    "weights", "shims")}
    out["date"] = [d["date"] for d in docs]
    out["results"] = summary
    out["repeats"] = [{"date": d["date"], "results": d["results"]} for d in docs]
    text = json.dumps(out, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sam2-root", default=os.path.join(REPO, "ref"),
                    help="folder holding Meta's sam2 package (default <repo>/ref)")
    ap.add_argument("--stage", choices=["tiny_image", "tiny_video", "large_image"])
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--stages", default="tiny_image,tiny_video,large_image")
    ap.add_argument("--prefix", default="", help='command prefix of each stage, e.g. "chrt -f 10"')
    ap.add_argument("--sam2-commit", default=None, help="recorded in the JSON")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--combine", nargs="+", metavar="JSON",
                    help="summarise the JSON files of several --all runs")
    ap.add_argument("--out", help="write the combined JSON here (--all, --combine)")
    args = ap.parse_args()
    args.sam2_root = os.path.abspath(args.sam2_root)
    if args.combine:
        combine(args)
    elif args.all:
        run_all(args)
    elif args.stage:
        run_stage(args)
    else:
        ap.error("give --stage or --all")


if __name__ == "__main__":
    main()
