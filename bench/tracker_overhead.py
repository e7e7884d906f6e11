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

--whole-run: the whole-run cost at the defaults instead. The default `Config()` (what the CLI and the Lab run), trained as
`finetune_lab.experiment.run_learner` trains it (same learner, seed, channels_last on a CPU, fastai's `fine_tune`, no bar),
with and without the tracker, interleaved A B B A ..., `--reps` pairs in one process after one warm-up pair; each timed
from the start of `fine_tune` to the end, the tracked one until its `history` is built. Reported: the median and range of
the per-pair ratios tracked / untracked (wall and CPU time), and where the tracker's own time went (per callback event).
--compare-to REV adds a third case, the tracker of finetune_lab/tracker.py at git revision REV, in the same rotation.

Usage: python bench/tracker_overhead.py --whole-run [--reps 5] [--compare-to REV]
"""
import argparse, collections, gc, importlib.util, os, subprocess, sys, tempfile, time
from pathlib import Path
from common import header, median, step_timer, NoValidate
from finetune_lab.experiment import Config, get_dls, STRATEGY_FUNCS, _reseed
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

def timed(cls):
    "`cls` (a tracker class), with the wall and CPU time of each of its own callback events (and of `history`) summed by name."
    class EventTimer(cls):
        def __init__(self, *a, **kw): super().__init__(*a, **kw); self.spent, self.cpu = collections.Counter(), collections.Counter()
        def _timed(self, name, f):
            t, c = time.perf_counter(), time.process_time(); r = f()
            self.spent[name] += time.perf_counter() - t; self.cpu[name] += time.process_time() - c; return r
        def __call__(self, event_name): return self._timed(event_name, lambda: super(EventTimer, self).__call__(event_name))
        @property
        def history(self): return self._timed('history', lambda: cls.history.fget(self))
    return EventTimer

def tracker_at(rev):
    "The `WeightChangeTracker` class of finetune_lab/tracker.py as it was at git revision `rev`, next to today's."
    src = subprocess.run(['git', 'show', f'{rev}:finetune_lab/tracker.py'], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent).stdout
    f = Path(tempfile.mkdtemp())/f'tracker_at_{rev}.py'   # a real file: numba caches its compiled kernels next to it
    f.write_text(src)
    spec = importlib.util.spec_from_file_location(f'finetune_lab.tracker_at_{rev}', f)
    mod = importlib.util.module_from_spec(spec); sys.modules[spec.name] = mod; spec.loader.exec_module(mod)
    return mod.WeightChangeTracker

def whole_run(cfg, tracker_cls):
    "(wall, CPU, tracker) of one default run as `run_learner` trains it, watched by a `timed(tracker_cls)` (None: untracked)."
    dls = get_dls(cfg); _reseed(dls, cfg.seed)
    learn = build_learner(dls, cfg.arch, cfg.head_depth, cfg.head_width, cfg.ps, cfg.concat_pool, pretrained=cfg.pretrained,
                          train_bn=cfg.train_bn, keep_bn_stats=cfg.keep_bn_stats)
    if dls.device.type == 'cpu': learn.to_channelslast(use_amp=False)
    tr = timed(tracker_cls)(every=cfg.track_every, config=cfg.asdict()) if tracker_cls else None
    if tr: learn.add_cbs(tr)
    gc.collect()   # the previous run's learner is freed here, not inside the next timed run
    t, c = time.perf_counter(), time.process_time()
    with learn.no_bar(), learn.no_logging(): STRATEGY_FUNCS[cfg.strategy](learn, cfg)
    if tr: tr.history
    return time.perf_counter() - t, time.process_time() - c, tr

def main_whole_run(reps, compare_to=None):
    header("Tracker overhead, whole default run (fine_tune wall time tracked / untracked)")
    cfg = Config().resolved()
    print(f"# {cfg}", flush=True)
    cases = {'untracked': None, 'tracked': WeightChangeTracker, **({f'tracked@{compare_to}': tracker_at(compare_to)} if compare_to else {})}
    for cls in cases.values(): whole_run(cfg, cls)   # warm-up: photos cached, kernels compiled
    res = {k: [] for k in cases}
    for r in range(reps):
        for k in list(cases)[r % len(cases):] + list(cases)[:r % len(cases)]: res[k].append(whole_run(cfg, cases[k]))   # each case first in turn
        print(f"rep {r}: " + ', '.join(f"{k} {res[k][-1][0]:.2f} s wall / {res[k][-1][1]:.2f} s CPU" for k in cases) +
              f"  (load {os.getloadavg()[0]:.1f})", flush=True)
    base = res['untracked']
    for k in list(cases)[1:]:
        for i, name in ((0, 'wall'), (1, 'CPU')):
            rs = [a[i]/b[i] for a, b in zip(res[k], base)]
            print(f"{k:>20s} / untracked, {name:4s}: median {median(rs):.4f}  range {min(rs):.4f}-{max(rs):.4f}  over {reps} pairs", flush=True)
        spent, cpu = sum((a[2].spent for a in res[k]), collections.Counter()), sum((a[2].cpu for a in res[k]), collections.Counter())
        print(f"{k:>20s}: its own events per run, wall (CPU) s: " +
              ', '.join(f"{e} {v/reps:.3f} ({cpu[e]/reps:.3f})" for e, v in spent.most_common() if v/reps >= 5e-3) +
              f"; all {sum(spent.values())/reps:.3f} ({sum(cpu.values())/reps:.3f})", flush=True)
    print(f"untracked median {median([a[0] for a in base]):.2f} s wall, {median([a[1] for a in base]):.2f} s CPU", flush=True)
    return res

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
    p.add_argument('--whole-run', action='store_true', help="the whole default run's cost instead of the step's")
    p.add_argument('--compare-to', help="with --whole-run: also the tracker as it was at this git revision, interleaved")
    a = p.parse_args()
    if a.whole_run: main_whole_run(a.reps, a.compare_to)
    else: main(a.archs, a.reps, a.size, a.bs, a.n_images)
