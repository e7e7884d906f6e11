"""Re-take the README's two screenshots after a default run, in headless Chromium (Debian's) through Playwright:

    python tools/screenshots.py            # writes nbs/images/lab_jupyterlab.png and nbs/images/app_voila.png

Each starts from an empty run/image cache (`FINETUNE_LAB_CACHE` in a temporary folder), so the panel trains for real
with the Lab's defaults and the "Finished in N s" line is this machine's time: take them on a quiet machine.
Needs JupyterLab (`pip install jupyterlab`) for the first, voila (the dev extra) for the second."""
import json, os, subprocess, sys, tempfile, time
from pathlib import Path
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO/'tests'))
from test_voila_app import APP, CHROMIUM, free_port, loopback_only, voila, wait_ready  # noqa: E402  (the test's server helpers)

VIEW = dict(width=1400, height=2700)
LAB_CELL = "from finetune_lab.lab import Lab\nlab = Lab()   # real Pets photos (bundled), the Lab's defaults\nlab"

def finish(page, out):
    "Press Run, wait for the run to end, and save a screenshot of the viewport to `out`."
    page.locator('.fl-run').click()
    page.locator('.fl-msg.fl-ok').wait_for(timeout=600_000)
    time.sleep(3)   # the report image and the explanation arrive after the status line
    page.screenshot(path=str(out))
    print(out, '|', page.locator('.fl-status').inner_text())

def jupyterlab(browser, tmp, out):
    nb = dict(cells=[dict(cell_type='code', id='lab', metadata={}, execution_count=None, outputs=[], source=LAB_CELL)],
              metadata=dict(kernelspec=dict(name='python3', display_name='Python 3 (ipykernel)', language='python')),
              nbformat=4, nbformat_minor=5)
    (tmp/'nb').mkdir()   # the file browser shows only the notebook; the cache and the server log live beside it
    (tmp/'nb'/'lab.ipynb').write_text(json.dumps(nb))
    port = free_port()
    proc = subprocess.Popen([sys.executable, '-m', 'jupyter', 'lab', '--no-browser', f'--port={port}', '--ServerApp.ip=127.0.0.1', '--allow-root',
                             "--IdentityProvider.token=", f"--ServerApp.root_dir={tmp/'nb'}"], env={**os.environ, 'FINETUNE_LAB_CACHE': str(tmp/'cache')},
                            stdout=open(tmp/'lab.log', 'w'), stderr=subprocess.STDOUT)
    try:
        url = f'http://127.0.0.1:{port}/'
        try: wait_ready(url, proc, timeout=120)
        except (RuntimeError, TimeoutError) as e: sys.exit(f"{e}:\n" + (tmp/'lab.log').read_text()[-2000:])
        page = browser.new_page(viewport=VIEW)
        page.route('**/*', loopback_only)
        page.goto(url + 'lab/tree/lab.ipynb', timeout=120_000)
        page.locator('.jp-Notebook .jp-Cell').first.click()
        page.locator('text=Python 3 (ipykernel) | Idle').first.wait_for(timeout=120_000)
        page.keyboard.press('Shift+Enter')
        page.locator('.fl-run').wait_for(timeout=120_000)
        time.sleep(2)
        no_news = page.get_by_role('button', name='No', exact=True)   # JupyterLab's "notified about Jupyter news?" toast
        try: no_news.click(timeout=15_000)
        except Exception: pass   # it did not ask
        finish(page, out)
    finally:
        proc.terminate(); proc.wait(timeout=30)

def app_voila(browser, tmp, out):
    with voila(APP, env={'FINETUNE_LAB_CACHE': str(tmp/'cache_voila')}, log=tmp/'voila.log') as url:
        page = browser.new_page(viewport={**VIEW, 'height': 2300})
        page.route('**/*', loopback_only)
        page.goto(url, timeout=120_000)
        page.locator('.fl-run').wait_for(timeout=120_000)
        time.sleep(2)
        finish(page, out)

if __name__ == '__main__':
    images = REPO/'nbs'/'images'
    with sync_playwright() as p, tempfile.TemporaryDirectory() as d:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        jupyterlab(browser, Path(d), images/'lab_jupyterlab.png')
        app_voila(browser, Path(d), images/'app_voila.png')
        browser.close()
