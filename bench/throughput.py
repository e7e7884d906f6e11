"""P2: throughput of `finetune_lab.experiment.run(cfg)` against plain fastai on the same data and settings.

Plain = `vision_learner(dls, arch, metrics=error_rate)` + `learn.fine_tune(epochs, base_lr, freeze_epochs=..., lr_mult=...)`
on the very DataLoaders `run` uses (`get_dls(cfg)`: same source, size, bs, subset). Both train without a progress bar,
both include building the learner; `run` also reseeds, builds the head from Config and records every step.
The two are interleaved (A B B A ...) in one process after one warm-up each.
Reported: per repetition plain time / run time; the median over repetitions. Target >= 0.98.

Usage: python bench/throughput.py [--reps 5] [--arch efficientnet_lite0] [--n-images 200] [--size 96] [--bs 32]
"""
import argparse, time
from common import header, median
from fastai.vision.all import vision_learner, error_rate, set_seed
from finetune_lab.experiment import Config, get_dls, run
from finetune_lab.models import ARCHS

def plain(cfg):
    "fastai as the forum would write it: vision_learner + fine_tune, on the same DataLoaders."
    t = time.perf_counter()
    set_seed(cfg.seed)
    learn = vision_learner(get_dls(cfg), ARCHS[cfg.arch], pretrained=cfg.pretrained, metrics=error_rate)
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(cfg.epochs, cfg.base_lr, freeze_epochs=cfg.freeze_epochs, lr_mult=cfg.lr_mult)
    return time.perf_counter() - t

def ours(cfg):
    t = time.perf_counter()
    run(cfg, progress=False)
    return time.perf_counter() - t

def main(a):
    header("P2 throughput (plain fastai time / finetune_lab run time)")
    cfg = Config(arch=a.arch, n_images=a.n_images, size=a.size, bs=a.bs, pretrained=a.arch != 'resnet34').resolved()
    print(f"# {cfg.arch}, source {cfg.source}, {cfg.n_images} images at {cfg.size} px, bs {cfg.bs}, "
          f"{cfg.freeze_epochs}+{cfg.epochs} epochs", flush=True)
    get_dls(cfg); plain(cfg); ours(cfg)  # warm-up: data, weights, allocator
    ratios, tp, to = [], [], []
    for r in range(a.reps):
        fs = (plain, ours) if r % 2 == 0 else (ours, plain)
        t = {f.__name__: f(cfg) for f in fs}
        ratios.append(t['plain']/t['ours']); tp.append(t['plain']); to.append(t['ours'])
        print(f"rep {r}: plain {t['plain']:.2f} s  run {t['ours']:.2f} s  ratio {ratios[-1]:.3f}", flush=True)
    print(f"plain {median(tp):.2f} s, run {median(to):.2f} s; ratio plain/run median {median(ratios):.4f} over {a.reps} reps "
          f"(reps: {' '.join(f'{x:.3f}' for x in ratios)})")

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--reps', type=int, default=5); p.add_argument('--arch', default='efficientnet_lite0')
    p.add_argument('--n-images', type=int, default=200); p.add_argument('--size', type=int, default=96)
    p.add_argument('--bs', type=int, default=32)
    main(p.parse_args())
