"""Issue 22: what a bigger validation set costs. Wall time of a default `run(Config())` on the bundled photos, per n_valid.

Each case runs in a fresh process (imports excluded, the resized-image cache warm): the first run (building the data,
loading the weights, measuring the baselines) and a second run with another seed on the same validation photos (the
baselines are shared). `--zero-shot cold` first deletes the zero-shot answers kept on disk, so the first run measures
them (a machine's first session); `warm` reads them back (every later session on the same photos). CPU time (both threads) is printed beside the wall time: the wall time grows when other work
shares the cores. The error rate comes with its count and Wilson 95 % interval half-width. Target: the first
run <= 20 s on 2 quiet cores.

Usage: python bench/valid_size.py [--n-valid None 200 400] [--reps 1] [--runs 2] [--zero-shot cold warm]
"""
import argparse, json, math, subprocess, sys
from common import header

CHILD = r'''
import json, shutil, sys, time, warnings
warnings.filterwarnings('ignore')
from finetune_lab.experiment import Config, run
from finetune_lab.data import cache_dir
if sys.argv[3] == 'cold': shutil.rmtree(cache_dir()/'zero_shot', ignore_errors=True)
n_valid = None if sys.argv[1] == 'None' else int(sys.argv[1])
cfg = Config(source='bundled', n_valid=n_valid, n_images=400 if n_valid is None else 320)
out = []
for seed in (42, 43)[:int(sys.argv[2])]:
    t, c = time.perf_counter(), time.process_time(); h = run(cfg.replace(seed=seed), progress=False)
    w, c = time.perf_counter() - t, time.process_time() - c
    e = h.epochs.error_rate.iloc[-1]
    out.append(dict(seed=seed, wall=w, cpu=c, error=float(e), n=len(h.valid_targets), wrong=int((h.valid_preds != h.valid_targets).sum()), steps=len(h.steps)))
print(json.dumps(out))
'''

def wilson_half(k, n, z=1.96):
    p = k/n; d = 1 + z*z/n
    return z*math.sqrt(p*(1-p)/n + z*z/(4*n*n))/d

def main(a):
    header("Issue 22: wall time of run(Config(source='bundled')) per n_valid (fresh process each, imports excluded)")
    for r in range(a.reps):
        for nv in a.n_valid:
            for zs in a.zero_shot:
                p = subprocess.run([sys.executable, '-c', CHILD, nv, str(a.runs), zs], capture_output=True, text=True)
                if p.returncode: print(p.stderr[-2000:]); continue
                for o in json.loads(p.stdout.strip().splitlines()[-1]):
                    print(f"rep {r} n_valid={nv:>4s} zero-shot answers {zs}: {'first' if o['seed'] == 42 else 'second'} run {o['wall']:5.1f} s "
                          f"(CPU {o['cpu']:5.1f} s), {o['steps']} steps, {o['wrong']} of {o['n']} wrong = {o['error']*100:.1f} % "
                          f"(Wilson 95 % +-{wilson_half(o['wrong'], o['n'])*100:.1f} points)", flush=True)

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--n-valid', nargs='+', default=['None', '200', '400'])
    ap.add_argument('--reps', type=int, default=1)
    ap.add_argument('--zero-shot', nargs='+', default=['cold', 'warm'], choices=['cold', 'warm'])
    ap.add_argument('--runs', type=int, default=2, choices=[1, 2], help='1: the first run only')
    main(ap.parse_args())
