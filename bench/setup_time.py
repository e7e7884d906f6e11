"""P5: set-up time of a run, from `run(cfg)` being called to its first training batch starting.

Each repetition is a fresh child process (imports not counted) that calls `run(cfg1)` once (the first run of the
process: builds the DataLoaders and reads the ImageNet weights; the images themselves are already drawn/resized on
disk) and then `run(cfg2)` several times, cfg2 = cfg1 with head_depth=2 (same data, same weights, so both are
cached). A callback notes the time at the first training `before_batch` and cancels every fit there, so only
set-up is timed. The second-run time is also split into get_dls / build_learner / the rest (fit start: optimizer,
tracker reference copies, callbacks). Target: second run <= 1 s.

Usage: python bench/setup_time.py [--reps 5] [--second 3] [--source auto] [--arch efficientnet_lite0]
"""
import argparse, json, subprocess, sys, time
from common import header, median

def child(a):
    from fastai.callback.core import Callback, CancelFitException
    import finetune_lab.experiment as S
    from finetune_lab.experiment import Config, run
    class FirstBatch(Callback):
        order = -10_000
        def __init__(self): self.t = None
        def before_batch(self):
            if self.training and self.t is None: self.t = time.perf_counter()
            raise CancelFitException()
    parts = {}
    def timing(name, f):  # wraps a library function to time its calls (they are looked up in strategies at call time)
        def g(*args, **kw):
            t = time.perf_counter(); r = f(*args, **kw); parts[name] = parts.get(name, 0) + time.perf_counter() - t; return r
        return g
    S.get_dls, S.build_learner = timing('get_dls', S.get_dls), timing('build_learner', S.build_learner)
    cfg1 = Config(source=a.source, arch=a.arch, n_images=a.n_images, size=a.size, bs=a.bs)
    out = []
    for i, cfg in enumerate([cfg1] + [cfg1.replace(head_depth=2)]*a.second):
        parts.clear(); fb = FirstBatch(); t = time.perf_counter()
        run(cfg, cbs=[fb], progress=False)
        total = fb.t - t
        out.append(dict(total=total, **parts, rest=total - sum(parts.values())))
    print(json.dumps(out))

def main(a):
    header("P5 run set-up time: run(cfg) called -> first training batch")
    firsts, seconds = [], []
    for r in range(a.reps):
        cmd = [sys.executable, __file__, '--child'] + [f'--{k.replace("_", "-")}={v}' for k, v in vars(a).items() if k not in ('child', 'reps')]
        res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        firsts.append(res[0]); seconds += res[1:]
        fmt = lambda d: f"{d['total']:.3f} s (get_dls {d['get_dls']:.3f}, build_learner {d['build_learner']:.3f}, rest {d['rest']:.3f})"
        print(f"rep {r}: first {fmt(res[0])}; second " + '; '.join(f"{d['total']:.3f}" for d in res[1:]), flush=True)
    for name, v in (('first run', firsts), ('second run', seconds)):
        print(f"{name:10s} median {median([d['total'] for d in v]):.3f} s over {len(v)} "
              f"(get_dls {median([d['get_dls'] for d in v]):.3f}, build_learner {median([d['build_learner'] for d in v]):.3f}, "
              f"rest {median([d['rest'] for d in v]):.3f})")

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--reps', type=int, default=5); p.add_argument('--second', type=int, default=3)
    p.add_argument('--source', default='auto'); p.add_argument('--arch', default='efficientnet_lite0')
    p.add_argument('--n-images', type=int, default=200); p.add_argument('--size', type=int, default=96)
    p.add_argument('--bs', type=int, default=32); p.add_argument('--child', action='store_true')
    a = p.parse_args()
    child(a) if a.child else main(a)
