"""Torch intra-op threads on a shared CPU: training-step time with torch.set_num_threads(n) for each n, interleaved.

One learner (efficientnet_lite0 by default, Config's default data: 200 images at 96 px, bs 32, unfrozen), one epoch
per measurement without validation, the first step dropped; the thread count is switched between epochs, in
rotating order. Reported: median step time per thread count and its ratio to the default (torch.get_num_threads()
at start). On a machine whose cores are busy with other work, OpenMP's threads wait for each other at every op;
this shows whether fewer threads are faster there.

Usage: python bench/threads.py [--reps 5] [--threads 1 2] [--arch efficientnet_lite0] [--size 96]
"""
import argparse
import torch
from common import header, median, step_timer, NoValidate
from finetune_lab.experiment import Config, get_dls
from finetune_lab.models import build_learner

def step_time(learn, n):
    torch.set_num_threads(n)
    tm = step_timer()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4, cbs=tm + [NoValidate()])
    return median(tm[0].times[1:])  # wall: CPU time would hide the waiting

def main(a):
    default = torch.get_num_threads()
    header(f"torch threads: step time per intra-op thread count (default {default})")
    cfg = Config(source='synthetic', arch=a.arch, size=a.size, bs=a.bs, pretrained=a.arch == 'efficientnet_lite0')
    learn = build_learner(get_dls(cfg), a.arch, pretrained=cfg.pretrained); learn.unfreeze()
    step_time(learn, default)
    ts = {n: [] for n in a.threads}
    for r in range(a.reps):
        order = a.threads[r % len(a.threads):] + a.threads[:r % len(a.threads)]
        for n in order: ts[n].append(step_time(learn, n))
    torch.set_num_threads(default)
    for n, v in ts.items():
        rel = [x/y for x, y in zip(v, ts[default])] if default in ts else []
        print(f"{a.arch} {a.size}px bs{a.bs} threads {n}: {median(v)*1e3:7.1f} ms/step (reps: {' '.join(f'{x*1e3:.0f}' for x in v)})"
              + (f"  ratio to {default} threads median {median(rel):.3f}" if rel else ''), flush=True)

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--reps', type=int, default=5); p.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    p.add_argument('--arch', default='efficientnet_lite0'); p.add_argument('--size', type=int, default=96)
    p.add_argument('--bs', type=int, default=32)
    main(p.parse_args())
