"""Which settings make a CPU-sized run learn? Each row trains `run_learner(Config(...))` (the product's own path,
tracker included) on the bundled mini-Pets and scores the model on photos it never saw: ../shared/data/pets_sample
(196 original Oxford photos, none of them in the bundled set), overall and per class, next to its own validation
error, the always-majority-class error, and the wall time.

    python bench/defaults_grid.py --grid stage1 --seeds 0 1 2 [--out bench/defaults_grid.csv]

Grids are named below; rows are appended to the CSV (one line per run), `--table` prints the markdown summary
(mean and min-max over seeds) that bench/RESULTS.md quotes.
"""
import argparse, itertools, shutil, time
from pathlib import Path
import common  # noqa: F401  (BENCH_THREADS, warnings)
import numpy as np, pandas as pd, torch
from fastai.vision.all import get_image_files
from finetune_lab.data import is_cat, atomic_write
from finetune_lab.experiment import Config, run_learner, release_memory, STRATEGIES

UNSEEN = Path(__file__).resolve().parents[2]/'shared'/'data'/'pets_sample'/'images'
KNOBS = ('n_images', 'size', 'bs', 'freeze_epochs', 'epochs', 'base_lr', 'lr_mult', 'keep_bn_stats', 'train_bn', 'strategy', 'surgical_group')

def unseen_errors(learn, folder=UNSEEN):
    "(overall, cat, dog) error of `learn` on the photos in `folder` (fastai's test_dl: the validation transforms)."
    files = get_image_files(folder)
    dl = learn.dls.test_dl(files, num_workers=0)
    with learn.no_bar(), learn.no_logging(): p = learn.get_preds(dl=dl)[0]
    pred_cat = p.argmax(1) == learn.dls.vocab.o2i[True]
    y = torch.tensor([is_cat(f.name) for f in files])
    wrong = (pred_cat != y).float()
    return wrong.mean().item(), wrong[y].mean().item(), wrong[~y].mean().item()

def squished_unseen(size:int) -> Path:
    "The unseen photos squashed to size x size, as pets_more's redistributor squashed the bundled set's sources."
    from PIL import Image
    import tempfile
    dest = Path(tempfile.gettempdir())/f'finetune_lab_unseen_squished_{size}'
    if not dest.is_dir():   # built beside it, then renamed: a Ctrl-C never leaves a half-filled folder that looks done
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=dest.name + '.'))
        for f in get_image_files(UNSEEN):
            with Image.open(f) as im: im.convert('RGB').resize((size, size), Image.BICUBIC).save(tmp/f.name, quality=95)
        try: tmp.rename(dest)
        except OSError: shutil.rmtree(tmp)   # another process finished first: use its copy
    return dest

def balanced_pets() -> Path:
    "All 450 bundled cats and 450 of the 959 dogs (every 2nd or 3rd, in name order), as links: the balanced alternative."
    from finetune_lab.data import bundled_pets
    import tempfile
    dest = Path(tempfile.gettempdir())/'finetune_lab_bundled_balanced'/'images'
    if not dest.is_dir():
        dest.mkdir(parents=True)
        files = sorted(bundled_pets().glob('*.jpg'))
        cats, dogs = [f for f in files if is_cat(f.name)], [f for f in files if not is_cat(f.name)]
        for f in cats + [dogs[round(i*len(dogs)/len(cats))] for i in range(len(cats))]: (dest/f.name).symlink_to(f)
    return dest

def trial(seed, **knobs):
    cfg = Config(**{'source': 'bundled', 'arch': 'efficientnet_lite0', **knobs}, seed=seed)
    t = time.perf_counter()
    learn, h = run_learner(cfg, progress=False)
    wall = time.perf_counter() - t
    y = np.array([is_cat(Path(f).name) for f in learn.dls.valid_ds.items], float)
    majority = min(y.mean(), 1 - y.mean())
    err, cat, dog = unseen_errors(learn)
    squish = unseen_errors(learn, squished_unseen(cfg.size))[0]
    del learn; release_memory()
    src = Path(str(cfg.source))
    return dict(source=src.parent.name if src.name == 'images' else src.name, **{k: getattr(cfg, k) for k in KNOBS}, seed=seed, steps=len(h.steps), wall_s=round(wall, 1),
                frozen_error=round(float(h.epochs.error_rate.iloc[0]), 4),
                valid_error=round(float(h.epochs.error_rate.iloc[-1]), 4), valid_majority=round(float(majority), 4),
                valid_zero_shot=round(h.baselines.get('zero_shot', float('nan')), 4),
                unseen_error=round(err, 4), unseen_cat=round(cat, 4), unseen_dog=round(dog, 4),
                unseen_squished=round(squish, 4))

BASE = dict(n_images=200, size=96, bs=32, freeze_epochs=1, epochs=1, base_lr=2e-3, keep_bn_stats=False)  # the old defaults
def around(center, **alts):
    "One-knob-at-a-time variations of `center`."
    yield center
    for k, vs in alts.items():
        for v in vs:
            if v != center[k]: yield {**center, k: v}

GRIDS = {
    'old': lambda: [BASE, {**BASE, 'keep_bn_stats': True}, {**BASE, 'source': 'synthetic'}],
    'stage2': lambda: [dict(BASE, keep_bn_stats=True, **k) for k in (
        dict(n_images=400, size=128, bs=16, base_lr=2e-3), dict(n_images=400, size=128, bs=16, base_lr=5e-3),
        dict(n_images=400, size=96, bs=16, freeze_epochs=2, base_lr=5e-3), dict(n_images=600, size=96, bs=16, base_lr=5e-3),
        dict(n_images=400, size=128, bs=8, base_lr=2e-3), dict(n_images=800, size=96, bs=32, base_lr=5e-3))],
    'stage3': lambda: list(around(dict(BASE, n_images=400, size=128, bs=16, base_lr=2e-3, keep_bn_stats=True),
                                  keep_bn_stats=[False], n_images=[600, 800], base_lr=[1e-3, 3e-3], bs=[32], size=[112],
                                  freeze_epochs=[2])),
    'balanced': lambda: [dict(source=str(balanced_pets()), n_images=400, size=128, bs=16, base_lr=2e-3, keep_bn_stats=True)],
    'stage4': lambda: [dict(BASE, n_images=400, size=128, bs=16, keep_bn_stats=True, **k) for k in (
        dict(base_lr=2e-3), dict(base_lr=3e-3), dict(base_lr=2e-3, epochs=2), dict(base_lr=3e-3, epochs=2))],
    'size': lambda: [dict(BASE, source=src, n_images=400, size=sz, bs=16, keep_bn_stats=True)
                     for src, sz in (('/tmp/pets160', 144), ('/tmp/pets160', 160), ('/tmp/pets144q80', 144))],
    'defaults': lambda: [{}],   # Config()'s own defaults
    'strategies': lambda: [dict(strategy=s) for s in STRATEGIES],
    'papers': lambda: [dict(strategy='lp_ft'), dict(strategy='surgical', surgical_group=0), dict(strategy='surgical', surgical_group=1),
                       dict(strategy='ulmfit_lrs')],   # the other strategies' rows: --grid strategies (bench/strategies.csv)
    'head_lr_everywhere': lambda: [dict(strategy='no_discriminative', lr_mult=1.0)],
    'seeds': lambda: [dict(BASE, n_images=400, size=128, bs=16, keep_bn_stats=True, **k) for k in (
        dict(base_lr=2e-3), dict(base_lr=3e-3), dict(base_lr=2e-3, freeze_epochs=2))],
    'bigbatch': lambda: [dict(BASE, n_images=800, size=128, bs=32, keep_bn_stats=True, base_lr=lr) for lr in (1e-2, 5e-3)],
    'nobn': lambda: [dict(BASE, n_images=n, size=128, bs=16, keep_bn_stats=True, train_bn=False) for n in (400, 800)],
    'stage1': lambda: list(around(dict(BASE, keep_bn_stats=True, n_images=400, size=128, bs=16, base_lr=1e-2),
                                  n_images=[200, 800], size=[96], bs=[32], base_lr=[2e-3, 5e-3], keep_bn_stats=[False],
                                  freeze_epochs=[2], epochs=[2])),
}

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--grid', default='stage1'); p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--out', default=str(Path(__file__).with_name('defaults_grid.csv')))
    p.add_argument('--set', nargs='*', default=[], help="extra rows as knob=value,knob=value")
    p.add_argument('--table', action='store_true', help="print the summary of --out and exit")
    a = p.parse_args()
    if a.table: return print(table(pd.read_csv(a.out)))
    rows = GRIDS[a.grid]() if a.grid in GRIDS else []
    for s in a.set: rows.append({**BASE, **{k: _val(v) for k, v in (kv.split('=') for kv in s.split(','))}})
    print(common.machine(), flush=True)
    for knobs, seed in itertools.product(rows, a.seeds):
        r = trial(seed, **knobs)
        print(r, flush=True)
        old = pd.read_csv(a.out) if Path(a.out).exists() else None   # columns added later stay empty in older rows
        atomic_write(a.out, pd.concat([old, pd.DataFrame([r])], ignore_index=True).to_csv(index=False))   # all rows or the old file

def _val(v):
    for t in (int, float):
        try: return t(v)
        except ValueError: pass
    return {'True': True, 'False': False}.get(v, v)

def markdown(df) -> str:
    "`df` as a markdown table (no tabulate needed)."
    rows = [list(map(str, df.columns))] + [[str(v) for v in r] for r in df.itertuples(index=False)]
    return '\n'.join('| ' + ' | '.join(r) + ' |' for r in [rows[0], ['---']*len(rows[0])] + rows[1:])

def table(df) -> str:
    "Mean (min-max) over seeds of each setting's errors, in %; best unseen error first."
    df = df.assign(source=df['source'].fillna('bundled') if 'source' in df else 'bundled',
                   lr_mult=df['lr_mult'].fillna(100.0) if 'lr_mult' in df else 100.0,   # rows from before lr_mult was a column
                   surgical_group=df['surgical_group'].fillna(0).astype(int) if 'surgical_group' in df else 0)
    def fmt(s): return f"{s.mean()*100:.1f} ({s.min()*100:.1f}-{s.max()*100:.1f})" if s.notna().any() else ''
    cols = dict(unseen=('unseen_error', fmt), unseen_cat=('unseen_cat', fmt), unseen_dog=('unseen_dog', fmt),
                valid=('valid_error', fmt), after_frozen=('frozen_error', fmt), majority=('valid_majority', fmt),
                zero_shot=('valid_zero_shot', fmt))
    out = df.groupby(['source', *KNOBS], dropna=False).agg(
        seeds=('seed', 'nunique'), steps=('steps', 'median'), wall_s=('wall_s', 'median'),
        **{k: v for k, v in cols.items() if v[0] in df}, mean=('unseen_error', 'mean')).reset_index()
    return markdown(out.sort_values('mean').drop(columns='mean'))

if __name__ == '__main__': main()
