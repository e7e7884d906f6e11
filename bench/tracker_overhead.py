"""P1: WeightChangeTracker overhead = training-step time tracked / untracked (recording every step).

Each architecture is fitted one epoch frozen and one epoch unfrozen (fine_tune's two phases) at the
default Config sizes (96 px, bs 32, 200 images: 5 training steps an epoch), channels_last as `run` uses on a CPU,
untracked and tracked, interleaved
A B B A ... in one process; a step is timed from the first callback's before_batch to the last callback's
after_batch (the tracker's included), the first step of each epoch dropped.
Three measures per repetition, each the ratio tracked / untracked of median step times, or a share:
- wall:   step wall time (what a user waits for; noisy when other work shares the cores),
- CPU:    step CPU time of this process (insensitive to other work; with BENCH_THREADS=1 all compute is here),
- direct: the tracker's own after_batch CPU time / the untracked step's CPU time, + 1 (the cost, measured in place).
Reported: the median over repetitions. resnet34 runs with pretrained=False (no weights offline; same compute).

Usage: python bench/tracker_overhead.py [--reps 5] [--archs efficientnet_lite0 resnet34] [--size 96] [--bs 32]
"""
import argparse, time
from common import header, median, step_timer, NoValidate
from finetune_lab.experiment import Config, get_dls
from finetune_lab.models import build_learner
from finetune_lab.tracker import WeightChangeTracker

class TimedTracker(WeightChangeTracker):
    "The tracker, with the CPU time of each training after_batch noted."
    def after_batch(self):
        c = time.process_time(); super().after_batch()
        if self.training: self.cost.append(time.process_time() - c)
    def before_fit(self): self.cost = []; super().before_fit()

def one_fit(learn, frozen, tracked):
    "(median wall, median CPU, median tracker CPU) of one epoch's training steps, in seconds."
    learn.freeze() if frozen else learn.unfreeze()
    if frozen:  # as in fine_tune's frozen phase on a new learner: frozen weights have no gradient (not even a zeroed one)
        for p in learn.model.parameters():
            if not p.requires_grad: p.grad = None
    tm, tr = step_timer(), TimedTracker()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4, cbs=tm + [NoValidate()] + ([tr] if tracked else []))
    return median(tm[0].times[1:]), median(tm[0].cpu[1:]), (median(tr.cost[1:]) if tracked else 0.)

def main(archs, reps, size, bs, n_images):
    header("P1 tracker overhead (step time tracked / untracked)")
    out = {}
    for arch in archs:
        cfg = Config(source='auto', arch=arch, size=size, bs=bs, n_images=n_images, pretrained=arch != 'resnet34').resolved()
        learn = build_learner(get_dls(cfg), arch, pretrained=cfg.pretrained)
        learn.to_channelslast(use_amp=False)   # as finetune_lab.experiment.run does on a CPU (faster steps: a stricter ratio)
        one_fit(learn, True, True); one_fit(learn, False, False)  # warm-up
        for phase in ('frozen', 'unfrozen'):
            r_wall, r_cpu, r_dir, t = [], [], [], {False: [], True: []}
            for r in range(reps):
                order = (False, True) if r % 2 == 0 else (True, False)
                m = {tracked: one_fit(learn, phase == 'frozen', tracked) for tracked in order}
                r_wall.append(m[True][0]/m[False][0]); r_cpu.append(m[True][1]/m[False][1]); r_dir.append(1 + m[True][2]/m[False][1])
                for k in m: t[k].append(m[k])
            out[arch, phase] = r_wall, r_cpu, r_dir
            u, tt = t[False], t[True]
            print(f"{arch:19s} {phase:8s} untracked {median([x[0] for x in u])*1e3:7.1f} ms wall / {median([x[1] for x in u])*1e3:7.1f} ms CPU, "
                  f"tracked {median([x[0] for x in tt])*1e3:7.1f} / {median([x[1] for x in tt])*1e3:7.1f}, tracker after_batch "
                  f"{median([x[2] for x in tt])*1e3:5.2f} ms CPU", flush=True)
            for name, rs in zip(('wall', 'CPU', 'direct'), out[arch, phase]):
                print(f"    ratio {name:6s} median {median(rs):.4f}  (reps: {' '.join(f'{x:.3f}' for x in rs)})", flush=True)
    return out

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--archs', nargs='+', default=['efficientnet_lite0', 'resnet34'])
    p.add_argument('--reps', type=int, default=5); p.add_argument('--size', type=int, default=96)
    p.add_argument('--bs', type=int, default=32); p.add_argument('--n-images', type=int, default=200)
    a = p.parse_args()
    main(a.archs, a.reps, a.size, a.bs, a.n_images)
