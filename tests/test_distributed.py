"""The tracker inside fastai's distributed training: 2 CPU processes (gloo) under `learn.distrib_ctx()`,
started with `accelerate launch` (the README's line), against one process on the same global batches."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from finetune_lab.history import RunHistory

pytestmark = pytest.mark.slow   # launches 3 training processes: `python -m pytest -m slow` (and CI) runs it

ROOT, WORKER = Path(__file__).resolve().parents[1], Path(__file__).with_name('ddp_worker.py')

def _run(args, timeout=600, ok=True):   # a guard against a hung launch, not a speed test: gloo's waits on 2 busy cores can take minutes
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]),
           'ACCELERATE_USE_CPU': '1', 'OMP_NUM_THREADS': '1'}
    r = subprocess.run([sys.executable, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert (r.returncode == 0) == ok, r.stdout[-3000:] + r.stderr[-3000:]

LAUNCH = ['-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1',
          '--mixed_precision', 'no', '--dynamo_backend', 'no', WORKER]

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    pytest.importorskip('accelerate', reason="fastai's distrib_ctx needs accelerate (pip install accelerate)")
    ddp, one = tmp_path_factory.mktemp('ddp'), tmp_path_factory.mktemp('one')
    # `--multi_gpu` is accelerate's multi-process launcher (torch's elastic launcher underneath); with ACCELERATE_USE_CPU=1
    # it starts CPU processes (gloo). `--cpu --num_processes 2` would start only one process without MPI.
    _run([*LAUNCH, 'ddp', ddp])
    _run([WORKER, 'single', one])
    return ddp, one

def test_rank0_records_once_other_ranks_do_nothing(runs):
    ddp, _ = runs
    assert sorted(p.name for p in ddp.iterdir()) == ['history.npz', 'rank0.json', 'rank1.json']
    r0, r1 = (json.loads((ddp/f'rank{r}.json').read_text()) for r in (0, 1))
    assert r0 == dict(steps=6, took_reference=True) and r1 == dict(steps=0, took_reference=False)

def test_rank0_history_equals_one_process_on_the_global_batch(runs):
    ddp, one = runs
    d, s = RunHistory.load(ddp/'history.npz'), RunHistory.load(one/'single.npz')
    assert d.layers.equals(s.layers) and not d.layers.name.str.startswith('module.').any()
    assert d.steps[['step', 'fit', 'epoch', 'phase']].equals(s.steps[['step', 'fit', 'epoch', 'phase']]) and len(d.steps) == 6
    lrs = [c for c in s.steps.columns if c.startswith(('lr_', 'mom_'))]
    np.testing.assert_allclose(d.steps[lrs].to_numpy(), s.steps[lrs].to_numpy(), rtol=1e-6)
    for k in ('change', 'update'): np.testing.assert_allclose(getattr(d, k), getattr(s, k), rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(d.trainable, s.trainable)
    body_convs = ((d.layers.part == 'body') & (d.layers.kind == 'conv')).to_numpy()
    assert (d.change[-1] > 0).all() and (d.change[(d.steps.phase == 'frozen').to_numpy()][:, body_convs] == 0).all()
    cols = ['train_loss', 'valid_loss', 'error_rate']   # the Recorder's, gathered over both processes
    np.testing.assert_allclose(d.epochs[cols].to_numpy(float), s.epochs[cols].to_numpy(float), rtol=1e-4)
    # the per-step loss is rank 0's half of each global batch
    np.testing.assert_allclose(d.steps['loss'], json.loads((one/'half_loss.json').read_text()), rtol=1e-4)


@pytest.mark.parametrize('dead', [1, 0])
def test_dead_rank_leaves_history_marked_interrupted(tmp_path, dead):
    "A rank SIGKILLed in the unfrozen fit (after its 5th batch): rank 0's file holds the frozen fit and reads as interrupted."
    pytest.importorskip('accelerate', reason="fastai's distrib_ctx needs accelerate (pip install accelerate)")
    _run([*LAUNCH, f'kill{dead}', tmp_path], ok=False)
    h = RunHistory.load(tmp_path/'history.npz')
    # 3 frozen steps were saved, marked interrupted, as the unfrozen epoch began. When rank 1 dies, rank 0 may also
    # record its 4th and 5th steps: its next all-reduce fails, and the history is saved again as the process exits
    # (unless the launcher's SIGTERM ends it first); rank 0 SIGKILLed saves nothing more.
    assert h.interrupted and len(h.steps) in ((3, 5) if dead else (3,))
    assert h.steps.phase.tolist()[:3] == ['frozen']*3 and len(h.epochs) == 1
