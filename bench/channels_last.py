"""channels_last on CPU: training-step time with and without fastai's `Learner.to_channelslast(use_amp=False)`.

Per architecture two learners with identical weights on the same DataLoaders (synthetic, 200 images at 128 px,
bs 32, all layers unfrozen): one as built, one with fastai's `ChannelsLast` callback (model -> channels_last in
before_fit; the inputs stay NCHW, the first conv converts). One epoch each, interleaved A B B A ..., no validation;
a step is timed from the first before_batch to the last after_batch, the first step of each epoch dropped.
Per repetition: the ratio of median step times (channels_last / contiguous), wall and process CPU time. Optional third variant `--bf16`:
channels_last plus CPU bf16 autocast (fastai's MixedPrecision is CUDA-only, so a 4-line callback here).

`--check` then trains `run(cfg)` twice on real images (fine_tune 1+1, efficientnet_lite0, 128 px), once as is and
once with `cbs=[ChannelsLast()]` (the proposed library change), and compares error_rate, losses, the recorded
weight changes, and wall time.

Usage: python bench/channels_last.py [--reps 5] [--archs efficientnet_lite0 resnet18 resnet34] [--check] [--bf16]
"""
import argparse, time
from pathlib import Path
import numpy as np, torch
from common import header, median, step_timer, NoValidate
from fastai.callback.core import Callback
from fastai.callback.channelslast import ChannelsLast
from finetune_lab.experiment import Config, get_dls, run
from finetune_lab.models import build_learner

class CPUBFloat16(Callback):
    "bf16 autocast on the CPU for the forward pass and the loss (fastai's MixedPrecision only knows CUDA)."
    order = 10
    def before_batch(self): self.ac = torch.autocast('cpu', dtype=torch.bfloat16); self.ac.__enter__()
    def after_pred(self): self.learn.pred = self.pred.float()
    def after_loss(self): self.ac.__exit__(None, None, None)

def step_time(learn):
    tm = step_timer()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4, cbs=tm + [NoValidate()])
    return median(tm[0].times[1:]), median(tm[0].cpu[1:])

def bench_arch(arch, a):
    cfg = Config(source='synthetic', arch=arch, n_images=a.n_images, size=a.size, bs=a.bs, pretrained=arch == 'efficientnet_lite0')
    dls = get_dls(cfg)
    variants = ['contiguous', 'channels_last'] + (['channels_last+bf16'] if a.bf16 else [])
    learns = {}
    for v in variants:
        learns[v] = build_learner(dls, arch, pretrained=cfg.pretrained)
        if v != 'contiguous': learns[v].model.load_state_dict(learns['contiguous'].model.state_dict())
        if v.startswith('channels_last'): learns[v].to_channelslast(use_amp=False)
        if v.endswith('bf16'): learns[v].add_cb(CPUBFloat16())
        learns[v].unfreeze()
        step_time(learns[v])  # warm-up (and the model's conversion)
    times = {v: [] for v in variants}
    for r in range(a.reps):
        for v in (variants if r % 2 == 0 else variants[::-1]): times[v].append(step_time(learns[v]))
    base = times['contiguous']
    for v in variants:
        rw, rc = [t[0]/b[0] for t, b in zip(times[v], base)], [t[1]/b[1] for t, b in zip(times[v], base)]
        print(f"{arch:19s} {v:19s} {median([t[0] for t in times[v]])*1e3:7.1f} ms/step wall, {median([t[1] for t in times[v]])*1e3:7.1f} ms CPU; "
              f"ratio to contiguous: wall median {median(rw):.3f} (reps: {' '.join(f'{x:.3f}' for x in rw)}), "
              f"CPU median {median(rc):.3f}", flush=True)

def check(a):
    cfg = Config(source=a.pets, arch='efficientnet_lite0', n_images=a.check_images, size=a.size, bs=a.bs)
    get_dls(cfg); run(cfg, progress=False)  # warm-up: resize cache, weights
    hs, ts = {}, {}
    for name, cbs in (('contiguous', None), ('channels_last', [ChannelsLast()])):
        t = time.perf_counter(); hs[name] = run(cfg, cbs=cbs, progress=False); ts[name] = time.perf_counter() - t
        e = hs[name].epochs.iloc[-1]
        print(f"check {name:14s} error_rate {e.error_rate:.4f}  valid_loss {e.valid_loss:.5f}  train_loss {e.train_loss:.5f}  "
              f"run {ts[name]:.1f} s", flush=True)
    c, l = hs['contiguous'], hs['channels_last']
    d = np.nanmax(np.abs(c.change - l.change)/np.maximum(np.abs(c.change), 1e-12))
    print(f"check: {cfg.n_images} real images ({Path(a.pets).name}), fine_tune {cfg.freeze_epochs}+{cfg.epochs}: "
          f"max relative difference of recorded weight change {d:.2e}; step losses max |diff| "
          f"{np.abs(c.steps.loss.values - l.steps.loss.values).max():.2e}; run time ratio {ts['channels_last']/ts['contiguous']:.3f} (1 rep)")

def main(a):
    header("channels_last on CPU: step time channels_last / contiguous")
    print(f"# torch.get_num_threads() = {torch.get_num_threads()}, get_num_interop_threads() = {torch.get_num_interop_threads()}, "
          f"mkldnn {torch.backends.mkldnn.is_available()}, bs {a.bs}, {a.size} px, all layers trainable", flush=True)
    for arch in a.archs: bench_arch(arch, a)
    if a.check: check(a)

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--reps', type=int, default=5)
    p.add_argument('--archs', nargs='+', default=['efficientnet_lite0', 'resnet18', 'resnet34'])
    p.add_argument('--size', type=int, default=128); p.add_argument('--bs', type=int, default=32)
    p.add_argument('--n-images', type=int, default=200); p.add_argument('--check-images', type=int, default=400)
    p.add_argument('--pets', default=str(Path(__file__).resolve().parents[2]/'shared'/'data'/'pets_more'))
    p.add_argument('--check', action='store_true'); p.add_argument('--bf16', action='store_true')
    main(p.parse_args())
