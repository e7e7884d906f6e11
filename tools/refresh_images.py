"""Redraw the images the README and the docs' index show, from the current code: one command.

    python tools/refresh_images.py                # the demo figure (trains `finetune-lab demo`: ~1 min) and the screenshots
    python tools/refresh_images.py --figure-only  # the demo figure only

The demo figure `nbs/images/demo_compare.png` is drawn exactly as `finetune-lab demo` draws its compare.png, from the
three histories the demo saved, which are kept beside it (`nbs/images/demo_runs/*.npz`, a few hundred KB). The PNG keeps
every text it shows in its metadata (`plots.fig_to_png(stamp=True)`): tests/test_docs.py redraws the figure from the
kept histories and fails when today's code would write other words, so a stale image (old layer names, titles or
error counts) cannot stay in the README unnoticed. The screenshots come from tools/screenshots.py (Chromium, JupyterLab)."""
import argparse, shutil, subprocess, sys, tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO/'nbs'/'images'
RUNS = IMAGES/'demo_runs'

def demo_figure(runs=RUNS):
    "The compare figure `finetune-lab demo` draws, from the histories in `runs` (one per demo strategy, in its order)."
    from finetune_lab.cli import DEMO_STRATEGIES
    from finetune_lab.history import RunHistory
    from finetune_lab.plots import plot_compare
    return plot_compare([RunHistory.load(runs/f'{s}.npz') for s in DEMO_STRATEGIES], titles=list(DEMO_STRATEGIES))

def refresh_figure():
    "Train the demo into a temporary folder, keep its histories and redraw the README figure from them."
    with tempfile.TemporaryDirectory() as tmp:
        demo = "import sys; from finetune_lab.console import start; sys.argv[0] = 'finetune-lab'; sys.exit(start())"
        subprocess.run([sys.executable, '-c', demo, 'demo', '--source', 'bundled', '--out', tmp, '--quiet'], check=True)
        RUNS.mkdir(exist_ok=True)
        for p in Path(tmp).glob('*.npz'): shutil.copy(p, RUNS/p.name)
    from finetune_lab.plots import fig_to_png
    (IMAGES/'demo_compare.png').write_bytes(fig_to_png(demo_figure(), stamp=True))
    print(IMAGES/'demo_compare.png', '(look at it before committing)')

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--figure-only', action='store_true', help="redraw the demo figure only, not the screenshots")
    args = ap.parse_args()
    refresh_figure()
    if not args.figure_only: subprocess.run([sys.executable, str(REPO/'tools'/'screenshots.py')], check=True)
