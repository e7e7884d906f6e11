"""GPU tracker overhead: epoch time tracked / untracked, resnet34 at 224 px on a Pets-sized synthetic set.

Prepared for a machine with a CUDA GPU (not run in the CPU-only task that wrote it; see RESULTS.md). Data: 7,390
random 224 px images and cat/dog labels already on the GPU (Pets' size; decoding and augmenting JPEGs would hide the
tracker behind the data loader, so it is left out on purpose), resnet34 (pretrained=False: same compute, no
download), bs 64, fine_tune's two phases (frozen, unfrozen), fp32 and channels_last+AMP optional. Each repetition
fits one epoch untracked and one tracked (every step), interleaved A B B A, with torch.cuda.synchronize() around each
epoch; reported: median over repetitions of the ratio of epoch times, per phase. Target: <= 1.03.
Sized to finish in about 3-4 minutes on one H100/H200 (reps 5, 2 phases, ~90 steps/epoch).

Usage: python bench/gpu_tracker_overhead.py [--reps 5] [--n 7390] [--bs 64] [--size 224] [--amp]
"""
import argparse, time
import torch
from common import header, median, NoValidate
from fastai.vision.all import DataLoaders, vision_learner, error_rate
from fastai.data.core import DataLoader
from finetune_lab.models import resnet34
from finetune_lab.tracker import WeightChangeTracker

def gpu_dls(n, size, bs):
    "DataLoaders over tensors already on the GPU (no decoding cost), normalised like ImageNet inputs."
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=g).cuda()
    y = torch.randint(0, 2, (n,), generator=g).cuda()
    ds = list(zip(x, y))
    n_val = n//5
    mk = lambda items, shuffle: DataLoader(items, bs=bs, shuffle=shuffle, drop_last=shuffle, device='cuda')
    dls = DataLoaders(mk(ds[n_val:], True), mk(ds[:n_val], False), device='cuda')
    dls.c = 2; return dls

def epoch_time(learn, frozen, tracked):
    learn.freeze() if frozen else learn.unfreeze()
    cbs = [NoValidate()] + ([WeightChangeTracker()] if tracked else [])
    torch.cuda.synchronize(); t = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4, cbs=cbs)
    torch.cuda.synchronize(); return time.perf_counter() - t

def main(a):
    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    header(f"GPU tracker overhead (epoch time tracked / untracked), {torch.cuda.get_device_name()}")
    dls = gpu_dls(a.n, a.size, a.bs)
    learn = vision_learner(dls, resnet34, pretrained=False, metrics=error_rate, n_out=2, loss_func=torch.nn.CrossEntropyLoss())
    if a.amp: learn.to_channelslast()  # channels_last + fp16 AMP
    learn.model.cuda()
    for fr in (True, False):
        for tr in (False, True): epoch_time(learn, fr, tr)  # warm-up: cudnn autotune, allocator
    for phase in ('frozen', 'unfrozen'):
        ratios, tu, tt = [], [], []
        for r in range(a.reps):
            order = (False, True) if r % 2 == 0 else (True, False)
            t = {tr: epoch_time(learn, phase == 'frozen', tr) for tr in order}
            ratios.append(t[True]/t[False]); tu.append(t[False]); tt.append(t[True])
        print(f"resnet34 {a.size}px bs{a.bs} {phase:8s} untracked {median(tu):.2f} s/epoch  tracked {median(tt):.2f} s/epoch  "
              f"ratio median {median(ratios):.4f} (reps: {' '.join(f'{x:.3f}' for x in ratios)})", flush=True)

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--reps', type=int, default=5); p.add_argument('--n', type=int, default=7390)
    p.add_argument('--bs', type=int, default=64); p.add_argument('--size', type=int, default=224)
    p.add_argument('--amp', action='store_true')
    main(p.parse_args())
