"""How sure are the error rates? (every difference sized to its noise)

Two measurements, each row one `run_learner(Config(...))` (the product's own path, tracker included) on the bundled
mini-Pets, scored on its own validation photos (count, Wilson 95 % interval) and on 196 original Pets photos none of
them saw (../shared/data/pets_sample):

    python bench/noise.py --part valid --seeds 0 1 2        # the default run validated on 80 photos (the old split) vs 400
    python bench/noise.py --part strategies --seeds 0 1 2   # every strategy over 3 seeds, each against fine_tune on its seed
    python bench/noise.py --table                           # the markdown tables bench/RESULTS.md quotes

Rows are appended to bench/noise.csv; each run's per-photo wrong flags go to bench/noise_answers.npz, so the exact
McNemar test of a strategy against fine_tune on the same seed and the same validation photos can be computed.
"""
import argparse, time
from pathlib import Path
import common  # noqa: F401  (BENCH_THREADS, warnings)
import numpy as np, pandas as pd
from finetune_lab.data import atomic_write
from finetune_lab.history import compare_wrong
from finetune_lab.experiment import Config, run_learner, release_memory, STRATEGIES
from defaults_grid import unseen_errors, markdown

HERE = Path(__file__).parent
CSV, ANSWERS = HERE/'noise.csv', HERE/'noise_answers.npz'
PARTS = dict(valid=[dict(n_valid=None, n_images=400), dict()],       # 400 images split 320/80 (the old default) vs 320 + 400 held out
             strategies=[dict(strategy=s, **({'head_depth': 0} if s == 'lp_ft' else {})) for s in STRATEGIES]
                        + [dict(strategy='surgical', surgical_group=1)])   # lp_ft's probe is linear: head_depth=0

def trial(seed:int, **knobs) -> tuple:
    "One run: its row and its per-photo wrong flags."
    cfg = Config(**{'source': 'bundled', 'arch': 'efficientnet_lite0', **knobs}, seed=seed)
    t = time.perf_counter()
    learn, h = run_learner(cfg, progress=False)
    wall = time.perf_counter() - t
    unseen = unseen_errors(learn)[0]
    del learn; release_memory()
    e = h.final_errors()
    lo, hi = e.ci
    key = f"{cfg.strategy}-g{cfg.surgical_group}-nv{cfg.n_valid}-s{seed}"
    row = dict(key=key, strategy=cfg.strategy, surgical_group=cfg.surgical_group, n_images=cfg.n_images, n_valid=cfg.n_valid,
               seed=seed, steps=len(h.steps), wall_s=round(wall, 1), wrong=e.wrong, n=e.n, valid_error=e.rate, ci_lo=lo, ci_hi=hi,
               majority=h.baseline_errors('majority').rate, zero_shot=h.baselines.get('zero_shot'), unseen_error=round(unseen, 4))
    return row, h.wrong()

def save(row, wrong):
    old = pd.read_csv(CSV) if CSV.exists() else None
    atomic_write(CSV, pd.concat([old, pd.DataFrame([row])], ignore_index=True).to_csv(index=False))
    ans = dict(np.load(ANSWERS)) if ANSWERS.exists() else {}
    ans[row['key']] = wrong
    atomic_write(ANSWERS, lambda f: np.savez_compressed(f, **ans))

def pct(s): return f"{s.mean()*100:.1f} ({s.min()*100:.1f}–{s.max()*100:.1f})"

def valid_table(df) -> str:
    "The default run at the two validation sizes: photos, interval half-width, wall time."
    df = df[df.strategy.eq('fine_tune')].copy()
    df['half_width'] = (df.ci_hi - df.ci_lo)/2
    out = df.groupby('n_valid', dropna=False).agg(seeds=('seed', 'nunique'), photos=('n', 'median'), valid_error=('valid_error', pct),
                                                  ci_half_width=('half_width', lambda s: f"±{s.mean()*100:.1f}"),
                                                  unseen_error=('unseen_error', pct), wall_s=('wall_s', 'median')).reset_index()
    return markdown(out)

def strategies_table(df) -> str:
    "Each strategy over seeds: validation error (mean, range), the exact McNemar verdict against fine_tune on each seed, unseen error."
    ans = dict(np.load(ANSWERS))
    df = df[df.n_valid.eq(400)]
    ft = df[df.strategy.eq('fine_tune')].set_index('seed')
    rows = []
    for (s, g), d in df.groupby(['strategy', 'surgical_group']):
        if s != 'surgical' and g != 0: continue
        verdicts = []
        for r in d.itertuples():
            if s == 'fine_tune' or r.seed not in ft.index: continue
            v = compare_wrong(ans[r.key], ans[ft.loc[r.seed, 'key']])
            verdicts.append(f"{v.which} ({v.a_only}/{v.b_only}, p={v.p:.2g})")
        rows.append(dict(strategy=s + (f' (group {g})' if s == 'surgical' else ''), seeds=d.seed.nunique(), photos=int(d.n.median()),
                         valid_error=pct(d.valid_error), vs_fine_tune_each_seed='; '.join(verdicts) or '—',
                         unseen_error=pct(d.unseen_error), wall_s=d.wall_s.median()))
    return markdown(pd.DataFrame(rows).sort_values('strategy'))

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--part', choices=list(PARTS), default='strategies')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--table', action='store_true', help="print the summaries of bench/noise.csv and exit")
    a = p.parse_args()
    if a.table:
        df = pd.read_csv(CSV)
        return print(valid_table(df), '\n\n', strategies_table(df))
    print(common.machine(), flush=True)
    done = set(pd.read_csv(CSV).key) if CSV.exists() else set()
    for knobs in PARTS[a.part]:
        for seed in a.seeds:
            cfg = Config(**{'source': 'bundled', **knobs}, seed=seed)
            if f"{cfg.strategy}-g{cfg.surgical_group}-nv{cfg.n_valid}-s{seed}" in done: continue   # measured already: rows are kept, not repeated
            row, wrong = trial(seed, **knobs)
            print(row, flush=True)
            save(row, wrong)

if __name__ == '__main__': main()
