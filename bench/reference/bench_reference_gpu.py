#!/usr/bin/env python3
"""Times Meta's SAM 2.1 code on a GPU with the definitions of
/work/shared/bench/reference-gpu.json, so that sam2d's GPU figures
(bench/gpu/device_check.sh) can be compared with the reference on the same GPU:

  image encoder: forward_image on a 1x3x1024x1024 tensor, median of --runs (10)
                 after --warmup (3), in milliseconds;
  propagation:   a video (default tests/data/media/bedroom.mp4, 200 frames
                 960x540) as JPEG frames, one object clicked at (210, 350) on
                 frame 0, propagate_in_video over every frame; FPS of each of
                 --video-runs (3) runs, reported FPS = best of runs 2..n.

Modes: bf16 = torch.autocast(bfloat16) with TF32 on (Meta's benchmark
settings); fp32 = no autocast, TF32 off. Eager (no torch.compile). Weights are
PyTorch's default random initialisation (seeded); no checkpoint is read.

Meta's code is NOT part of this repository: export it with setup.sh into an
ignored folder (default <repo>/ref) and pass it with --sam2-root. The model is
built as bench_reference.py builds it (no hydra: the YAML is read with PyYAML,
Meta's build overrides applied, `_target_` classes instantiated), then moved
to the GPU. Prints one JSON line last.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import bench_reference as br  # noqa: E402  (shims, instantiate, configs, overrides)


def _numbers(node):
    """PyYAML (YAML 1.1) reads 1e-6 as a string; omegaconf, which Meta's build uses, as a float."""
    if isinstance(node, dict):
        return {k: _numbers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_numbers(v) for v in node]
    if isinstance(node, str):
        try:
            return float(node) if any(c in node for c in ".eE") and not node.isalpha() else node
        except ValueError:
            return node
    return node


def load_yaml(path):
    try:
        import yaml
        with open(path) as f:
            return _numbers(yaml.safe_load(f))
    except ImportError:
        from omegaconf import OmegaConf
        return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def build(sam2_root, size, video, device):
    import torch
    cfg = load_yaml(os.path.join(sam2_root, "sam2", br.CONFIGS[size]))["model"]
    br.merge(cfg, br.VIDEO_OVERRIDES if video else br.IMAGE_OVERRIDES)
    torch.manual_seed(0)
    return br.instantiate(cfg).to(device).eval()


def extract_frames(video, folder, max_frames):
    """The video's frames as JPEG files 00000.jpg ... (kept in `folder` for later runs)."""
    if os.path.isdir(folder) and any(f.endswith(".jpg") for f in os.listdir(folder)):
        return len([f for f in os.listdir(folder) if f.endswith(".jpg")])
    os.makedirs(folder, exist_ok=True)
    import cv2
    cap = cv2.VideoCapture(video)
    n = 0
    while n < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        cv2.imwrite(os.path.join(folder, "%05d.jpg" % n), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        n += 1
    cap.release()
    if n == 0:
        raise SystemExit("no frames decoded from %s" % video)
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sam2-root", default=os.path.join(REPO, "ref"))
    ap.add_argument("--model", choices=sorted(br.CONFIGS), default="tiny")
    ap.add_argument("--mode", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--video", default=os.path.join(REPO, "tests/data/media/bedroom.mp4"))
    ap.add_argument("--frames-dir", default=None, help="where the JPEG frames go (default: a temporary folder)")
    ap.add_argument("--video-runs", type=int, default=3)
    ap.add_argument("--point", default="210,350")
    # a smoke test of this script without a GPU: --device cpu --max-frames 3 --runs 1 --warmup 0 --video-runs 1
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--max-frames", type=int, default=100000)
    args = ap.parse_args()
    sam2_root = os.path.abspath(args.sam2_root)
    video = os.path.abspath(args.video)
    import tempfile
    frames_dir = os.path.abspath(args.frames_dir) if args.frames_dir else tempfile.mkdtemp(prefix="sam2-frames-")

    import contextlib
    import torch
    dev = args.device
    cuda = dev.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("no CUDA device for torch")

    def sync():
        if cuda:
            torch.cuda.synchronize()
    br.install_shims(torch)
    sys.path.insert(0, sam2_root)
    os.chdir(sam2_root)  # Meta's package refuses to run from its repository's parent
    bf16 = args.mode == "bf16"
    torch.backends.cuda.matmul.allow_tf32 = bf16
    torch.backends.cudnn.allow_tf32 = bf16

    def amp():
        return torch.autocast("cuda" if cuda else "cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    res = {"model": args.model, "mode": args.mode}
    # image encoder
    model = build(sam2_root, args.model, False, dev)
    x = torch.randn(1, 3, model.image_size, model.image_size, generator=torch.Generator().manual_seed(2)).to(dev)
    times = []
    with torch.inference_mode(), amp():
        for i in range(args.warmup + args.runs):
            sync()
            t0 = time.perf_counter()
            model.forward_image(x)
            sync()
            if i >= args.warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    res["image_encoder_ms_median"] = statistics.median(times)
    res["image_encoder_ms_runs"] = times
    del model, x
    if cuda:
        torch.cuda.empty_cache()

    # propagation
    n = extract_frames(video, frames_dir, args.max_frames)
    px, py = (float(v) for v in args.point.split(","))
    predictor = build(sam2_root, args.model, True, dev)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    fps = []
    with torch.inference_mode(), amp():
        t0 = time.perf_counter()
        state = predictor.init_state(video_path=frames_dir)  # frames on the model's device
        res["init_state_s"] = time.perf_counter() - t0
        for _ in range(args.video_runs):
            predictor.reset_state(state)
            predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=[[px, py]], labels=[1])
            sync()
            t0 = time.perf_counter()
            frames = 0
            for _frame_idx, _obj_ids, _masks in predictor.propagate_in_video(state):
                frames += 1
            sync()
            fps.append(frames / (time.perf_counter() - t0))
    res["propagate_fps_runs"] = fps
    res["propagate_fps"] = max(fps[1:]) if len(fps) > 1 else fps[0]
    res["frames"] = n
    res["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    res["gpu"] = torch.cuda.get_device_name(0) if cuda else "cpu"
    res["software"] = torch.__version__
    res["point"] = [px, py]
    res["shims"] = br.SHIMS
    print(json.dumps(res))


if __name__ == "__main__":
    main()
