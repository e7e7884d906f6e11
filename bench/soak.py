"""Soak: many tiny runs in one process must not leak memory, Learners or figures.

30 consecutive `run(cfg)` (source='synthetic', efficientnet_lite0, 24 images at 64 px, bs 8, 1 frozen + 1 unfrozen
epoch), each history drawn as the CLI and the Lab do (`plot_report` -> PNG) unless --no-plot. After run 5 and after
the last run: gc.collect(), then RSS, live `Learner` objects and live matplotlib `Figure`s (counted with gc).
Target: RSS growth from run 5 to run 30 < 100 MB, and no Learner/Figure piling up. Also printed: live tensors and
their MB, and RSS after glibc's malloc_trim(0) (measured after the plain RSS), to tell a leak from heap slack.

Usage: python bench/soak.py [--runs 30] [--no-plot]
"""
import argparse, ctypes, gc, time
import torch
from common import header, rss_mb, peak_rss_mb
from fastai.learner import Learner
from matplotlib.figure import Figure
from finetune_lab.experiment import Config, run
from finetune_lab.plots import plot_report, fig_to_png

def live(cls): return sum(isinstance(o, cls) for o in gc.get_objects())

def tensor_mb():
    "Live torch tensors (found by gc) and their storage in MB."
    ts = [o for o in gc.get_objects() if isinstance(o, torch.Tensor)]
    return len(ts), sum(t.untyped_storage().nbytes() for t in ts)/2**20

def trimmed_rss():
    "RSS after glibc's malloc_trim(0) hands freed heap pages back to the OS (tells a leak from allocator slack)."
    try: ctypes.CDLL('libc.so.6').malloc_trim(0)
    except OSError: pass
    return rss_mb()

def snapshot(i, t0):
    gc.collect()
    s = dict(run=i, rss=rss_mb(), learners=live(Learner), figures=live(Figure), secs=time.perf_counter()-t0)
    s['tensors'], s['tensor_mb'] = tensor_mb()
    s['trimmed'] = trimmed_rss()
    print(f"after run {i:3d}: RSS {s['rss']:7.1f} MB (after malloc_trim {s['trimmed']:7.1f} MB), live Learners {s['learners']}, "
          f"live Figures {s['figures']}, live tensors {s['tensors']} ({s['tensor_mb']:.1f} MB) ({s['secs']:.0f} s so far)", flush=True)
    return s

def main(a):
    header("Soak: RSS / live objects over many tiny runs in one process")
    cfg = Config(source='synthetic', arch='efficientnet_lite0', n_images=24, size=64, bs=8, freeze_epochs=1, epochs=1)
    t0, snaps = time.perf_counter(), {}
    for i in range(1, a.runs + 1):
        h = run(cfg, progress=False)
        if not a.no_plot: fig_to_png(plot_report(h))
        del h
        if i in (1, 5, a.runs) or i % 10 == 0: snaps[i] = snapshot(i, t0)
    g, gt = snaps[a.runs]['rss'] - snaps[5]['rss'], snaps[a.runs]['trimmed'] - snaps[5]['trimmed']
    print(f"RSS growth run 5 -> run {a.runs}: {g:+.1f} MB ({g/(a.runs-5):+.2f} MB/run); after malloc_trim {gt:+.1f} MB; "
          f"live tensors {snaps[5]['tensors']} -> {snaps[a.runs]['tensors']}; peak RSS {peak_rss_mb():.0f} MB; "
          f"live Learners {snaps[5]['learners']} -> {snaps[a.runs]['learners']}, Figures {snaps[5]['figures']} -> {snaps[a.runs]['figures']}")

if __name__ == '__main__':
    p = argparse.ArgumentParser(); p.add_argument('--runs', type=int, default=30); p.add_argument('--no-plot', action='store_true')
    main(p.parse_args())
