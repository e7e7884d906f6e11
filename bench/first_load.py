"""How long a student waits for the Lab: in a notebook (import, then `Lab()`), and as the Voila app in Chromium.

    python bench/first_load.py [--reps 2]

Notebook: a fresh process times `from finetune_lab.lab import Lab` (torch, fastai, timm, matplotlib, ipywidgets) and then
`Lab()` (the panel, nothing trained). Voila: `voila nbs/app.ipynb` served as the app test serves it; Chromium opens the
page and the time to the first paint (Voila's own "executing" page) and to the panel (`.fl-lab`) is taken. Each Voila
page load starts a fresh kernel, so every repetition pays the imports. Take it on a quiet machine.
"""
import argparse, json, subprocess, sys, tempfile, time
from pathlib import Path
from common import header, median

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO/'tests'))
from test_voila_app import APP, CHROMIUM, loopback_only, voila  # noqa: E402  (the app test's server helpers)

CHILD = r'''
import json, time
t0 = time.perf_counter()
from finetune_lab.lab import Lab
t1 = time.perf_counter()
lab = Lab()
t2 = time.perf_counter()
print(json.dumps(dict(imports=t1 - t0, lab=t2 - t1)))
'''

def notebook(reps):
    out = []
    for _ in range(reps):
        p = subprocess.run([sys.executable, '-c', CHILD], capture_output=True, text=True, check=True)
        out.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return out

def app(reps):
    from playwright.sync_api import sync_playwright
    out = []
    with tempfile.TemporaryDirectory() as tmp, voila(APP, env={'FINETUNE_LAB_CACHE': tmp}) as url, sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        for _ in range(reps):
            page = b.new_page(viewport={'width': 1366, 'height': 768})
            page.route('**/*', loopback_only)
            t = time.perf_counter()
            page.goto(url, wait_until='commit', timeout=120_000)
            page.locator('body').wait_for(timeout=120_000)
            first = time.perf_counter() - t
            page.locator('.fl-lab').wait_for(timeout=300_000)
            out.append(dict(first_paint=first, panel=time.perf_counter() - t))
            page.close()
        b.close()
    return out

def main(a):
    header("How long until the Lab shows: notebook import + Lab(), and the Voila page in Chromium")
    nb = notebook(a.reps)
    imports, labs = [r['imports'] for r in nb], [r['lab'] for r in nb]
    print(f"notebook: import finetune_lab.lab {median(imports):.1f} s (runs: {', '.join(f'{x:.1f}' for x in imports)}), "
          f"then Lab() {median(labs):.2f} s", flush=True)
    if not Path(CHROMIUM).exists(): return print(f"voila: skipped, {CHROMIUM} not found")
    ap = app(a.reps)
    first, panel = [r['first_paint'] for r in ap], [r['panel'] for r in ap]
    print(f"voila: first paint {median(first):.1f} s, panel {median(panel):.1f} s (runs: {', '.join(f'{x:.1f}' for x in panel)})")

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--reps', type=int, default=2)
    main(ap.parse_args())
