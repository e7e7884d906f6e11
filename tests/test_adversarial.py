"""End to end, in real processes: Ctrl-C (SIGINT) while importing, resizing, training and writing; two commands
writing into one folder at once; the Voila app's presets and its errors. Each ends in one line, with a known exit
code, and nothing finished is lost or half-written."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest
from finetune_lab.data import bundled_pets, _cached, _stamp
from finetune_lab.history import RunHistory

REPO = Path(__file__).resolve().parents[1]
START = "import sys; from finetune_lab.console import start; sys.argv[0] = 'finetune-lab'; sys.exit(start())"
TINY = ['--source', 'synthetic', '--arch', 'efficientnet_lite0', '--n-images', '16', '--size', '32', '--bs', '8']


def cli_proc(tmp_path, *args, env=None, before=''):
    """`finetune-lab *args` as the console script starts it, in its own process (one torch thread, a fresh cache).
    `before`: Python the process runs first, e.g. to send itself a Ctrl-C at a known point (`CTRL_C_AT_*`)."""
    e = {**os.environ, 'OMP_NUM_THREADS': '1', 'FINETUNE_LAB_CACHE': str(tmp_path/'cache'), 'PYTHONUNBUFFERED': '1', **(env or {})}
    return subprocess.Popen([sys.executable, '-c', before + '\n' + START, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=e, cwd=tmp_path)


# Ctrl-C sent by the process to itself at a known point, whatever the machine's speed or load:
CTRL_C_AT_IMPORT = """
import importlib.abc, os, signal, sys
class CtrlCAt(importlib.abc.MetaPathFinder):   # when the module {name!r} is about to be imported
    def find_spec(self, name, path=None, target=None):
        if name == {name!r}: sys.meta_path.remove(self); os.kill(os.getpid(), signal.SIGINT)
sys.meta_path.insert(0, CtrlCAt())
"""
CTRL_C_AT_RESIZE = """
import os, signal, warnings
warnings.filterwarnings('ignore', category=FutureWarning)   # importing fastai here, before the CLI's own import does
import finetune_lab.data as data
shrink, n = data._shrink, [0]
def counted(*a):   # after the 60th photo is resized into the cache
    r = shrink(*a); n[0] += 1
    if n[0] == 60: os.kill(os.getpid(), signal.SIGINT)
    return r
data._shrink = counted
"""
CTRL_C_AT_BATCH = """
import os, signal, warnings
warnings.filterwarnings('ignore', category=FutureWarning)   # importing fastai here, before the CLI's own import does
from fastai.basics import defaults, Callback
class CtrlCAt(Callback):   # at the 2nd training batch of the unfrozen fit (every learner gets fastai's default callbacks)
    def before_batch(self):
        if self.training and all(p.requires_grad for p in self.learn.model.parameters()) and self.iter == 1:
            os.kill(os.getpid(), signal.SIGINT)
defaults.callbacks = [*defaults.callbacks, CtrlCAt]
"""


def interrupt_when(p, ready, timeout=120):
    "Send SIGINT to `p` once `ready()` is true; return (exit code, stdout, stderr)."
    end = time.time() + timeout
    while not ready() and p.poll() is None and time.time() < end: time.sleep(0.05)
    assert p.poll() is None, f"finished before the interrupt: {p.communicate()}"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err


def one_line(err): return len(err.strip().splitlines()) == 1 and err.startswith('finetune-lab: ') and 'Traceback' not in err


def no_temporaries(d): return [p.name for p in Path(d).rglob('*') if p.name.endswith('.tmp') or p.name.endswith('.lock')]


@pytest.mark.parametrize('module', ['torch', pytest.param('fastai.learner', marks=pytest.mark.slow),   # early, middle and late
                                    pytest.param('matplotlib.pyplot', marks=pytest.mark.slow)])       # in the CLI's imports
def test_sigint_while_importing(tmp_path, module):
    p = cli_proc(tmp_path, 'run', '--out', tmp_path/'out', before=CTRL_C_AT_IMPORT.format(name=module))
    out, err = p.communicate(timeout=300)
    assert p.returncode == 130 and one_line(err) and 'while starting' in err, err
    assert not (tmp_path/'out').exists()


def test_sigint_a_library_turns_into_another_error_still_reads_as_ctrl_c(monkeypatch, capsys):
    "A Ctrl-C inside matplotlib's class set-up surfaces as RuntimeError (seen in CI: 'cannot start', exit 1)."
    from finetune_lab import console
    def import_hit_by_ctrl_c():
        try: os.kill(os.getpid(), signal.SIGINT); time.sleep(5)
        except KeyboardInterrupt: raise RuntimeError("Error calling __set_name__ on '_axis_method_wrapper'") from None
    monkeypatch.setattr(console, '_load_cli', import_hit_by_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    assert console.start() == 130
    err = capsys.readouterr().err
    assert one_line(err) and 'interrupted (Ctrl-C) while starting' in err, err
    assert signal.getsignal(signal.SIGINT) is before, "start() must give back the SIGINT handler it found"


def test_broken_install_is_exit_1_and_one_line(monkeypatch, capsys):
    from finetune_lab import console
    def broken(): raise ImportError("No module named 'fastai'")
    monkeypatch.setattr(console, '_load_cli', broken)
    assert console.start() == 1
    err = capsys.readouterr().err
    assert one_line(err) and "cannot start (ImportError: No module named 'fastai')" in err and 'pip install' in err, err


@pytest.mark.slow
def test_sigint_while_resizing_leaves_a_sound_cache(tmp_path):
    src = tmp_path/'pets'; shutil.copytree(bundled_pets(), src)
    cache = tmp_path/'cache'/'resized'
    p = cli_proc(tmp_path, 'run', '--source', src, '--n-images', 'none', '--size', '64', '--arch', 'efficientnet_lite0', '--out', tmp_path/'out',
                 before=CTRL_C_AT_RESIZE)
    out, err = p.communicate(timeout=300)
    code = p.returncode
    assert code == 130 and one_line(err) and f"nothing was written to {tmp_path/'out'}" in err, err
    cached = [f for d in cache.iterdir() for f in d.iterdir()]
    assert 50 < len(cached) < 1409 and not no_temporaries(cache)
    assert all(_cached(f, _stamp(src/f.name)) == 'fresh' for f in cached)    # every cached copy whole and current
    assert not list((tmp_path/'out').iterdir())


@pytest.mark.slow
def test_sigint_while_training_keeps_the_partial_run(tmp_path):
    p = cli_proc(tmp_path, 'run', *TINY, '--freeze-epochs', '2', '--epochs', '20', '--out', tmp_path/'out', before=CTRL_C_AT_BATCH)
    out, err = p.communicate(timeout=600)
    code = p.returncode
    assert code == 130 and one_line(err) and 'interrupted: 1 of 1 runs written' in err and 'the last one partial' in err, (out, err)
    assert 'Traceback' not in out + err
    h = RunHistory.load(tmp_path/'out'/'run.npz')
    assert h.interrupted and 0 < len(h.steps) and sorted(p.name for p in (tmp_path/'out').iterdir()) == ['explain.txt', 'run.npz', 'run.png']


@pytest.mark.slow
def test_sigint_while_writing_keeps_every_history(tmp_path):
    p = cli_proc(tmp_path, 'compare', '--strategies', 'fine_tune,full', *TINY, '--quiet', '--out', tmp_path/'out')
    seen = []
    def last_run_done():   # the second run has ended and been saved: the figures are being drawn and written
        seen.append(p.stdout.readline())
        return seen[-1].startswith('  -> ') and sum(l.startswith('  -> ') for l in seen) == 2
    code, rest, err = interrupt_when(p, last_run_done)
    assert code in (0, 130) and 'Traceback' not in err
    files = sorted(p.name for p in (tmp_path/'out').iterdir())
    assert {'fine_tune.npz', 'full.npz'} <= set(files) and not no_temporaries(tmp_path/'out')
    for n in ('fine_tune.npz', 'full.npz'): RunHistory.load(tmp_path/'out'/n)
    if code == 130:
        assert one_line(err) and 'interrupted (Ctrl-C)' in err
        assert set(err.split(': ')[-1].rstrip('.\n').split(', ')) == set(files)   # what it says is whole is what is there


@pytest.mark.slow
def test_two_commands_into_one_folder_at_once(tmp_path):
    ps = [cli_proc(tmp_path, 'run', *TINY, '--seed', s, '--quiet', '--out', tmp_path/'out') for s in (1, 2)]
    res = [p.communicate(timeout=600) for p in ps]
    assert [p.returncode for p in ps] == [0, 0], res
    assert sorted(p.name for p in (tmp_path/'out').iterdir()) == ['explain-2.txt', 'explain.txt', 'run-2.npz', 'run-2.png',
                                                                 'run.npz', 'run.png']
    seeds = {RunHistory.load(tmp_path/'out'/n).config['seed'] for n in ('run.npz', 'run-2.npz')}
    assert seeds == {1, 2}                                           # both runs kept, neither overwrote the other
    for out, _ in res:
        said = next(l for l in out.splitlines() if l.startswith('wrote ')).split(': ', 1)[1].split(', ')
        assert all((tmp_path/'out'/n).exists() for n in said)


# --- the Voila app ---------------------------------------------------------------------------------------------

APP = REPO/'nbs'/'app.ipynb'

def app_presets(env):
    "The app notebook's `env_presets`, run here on `env` (the same cells voila runs)."
    cells = {c['id']: ''.join(c['source']) for c in json.load(open(APP))['cells']}
    ns = {}
    exec(cells['35dd6033'] + '\n' + cells['fe7a7863'], ns)
    old = dict(os.environ)
    try:
        os.environ.update(env)
        return ns['env_presets']()
    finally: os.environ.clear(); os.environ.update(old)


def test_app_presets_read_like_cli_flags():
    from finetune_lab.cli import parse_value
    env = {'FINETUNE_LAB_APP_TRAIN_BN': 'false', 'FINETUNE_LAB_APP_N_IMAGES': 'none', 'FINETUNE_LAB_APP_KEEP_BN_STATS': 'auto',
           'FINETUNE_LAB_APP_BASE_LR': '1e-3', 'FINETUNE_LAB_APP_SOURCE': 'synthetic'}
    assert app_presets(env) == dict(source='synthetic', n_images=None, base_lr=1e-3, train_bn=False, keep_bn_stats='auto')
    assert parse_value('train_bn', 'bool', 'false') is False and parse_value('n_images', 'int | None', 'none') is None


@pytest.mark.slow
def test_app_shows_a_bad_preset_on_the_page_in_one_line(tmp_path):
    nbformat, nbclient = pytest.importorskip('nbformat'), pytest.importorskip('nbclient')
    nb = nbformat.read(APP, as_version=4)
    old = dict(os.environ)
    os.environ.update(FINETUNE_LAB_APP_EPOCHS='three', FINETUNE_LAB_CACHE=str(tmp_path), OMP_NUM_THREADS='1')
    try: nbclient.NotebookClient(nb, timeout=300, kernel_name='python3').execute()   # raises if a cell raised
    finally: os.environ.clear(); os.environ.update(old)
    import html
    shown = html.unescape(nb.cells[-1].outputs[0]['data']['text/html'])
    assert "finetune_lab cannot start" in shown and "FINETUNE_LAB_APP_EPOCHS: --epochs 'three' is not a whole number" in shown
    assert not any(o.get('output_type') == 'error' for c in nb.cells if c.cell_type == 'code' for o in c.outputs)
