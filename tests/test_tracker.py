"Tests of `finetune_lab.tracker` that need a real vision learner, more file damage, or a GPU."
import json, warnings, zipfile
from functools import partial
from pathlib import Path
import numpy as np, pytest, torch
from torch import nn
from fastai.vision.all import Learner, CrossEntropyLossFlat, OptimWrapper, error_rate, params, Callback
from finetune_lab.history import RunHistory
from finetune_lab.tracker import WeightChangeTracker
from finetune_lab.models import tiny_dls

warnings.filterwarnings('ignore', category=UserWarning)


class Flat(nn.Module):
    "Not a Sequential(body, head): the tracker must call the last param group the head."
    def __init__(self):
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
        self.mid, self.fc = nn.Conv2d(4, 4, 3), nn.Linear(4, 2)
    def forward(self, x): return self.fc(self.mid(self.bn(self.stem(x)).relu()).mean((2, 3)))


def flat_learner(**kw):
    split = lambda m: [params(m.stem)+params(m.bn), params(m.mid), params(m.fc)]
    return Learner(tiny_dls(), Flat(), loss_func=CrossEntropyLossFlat(), splitter=split, metrics=error_rate, **kw)


@pytest.fixture(scope='module')
def resnet_run():
    "fine_tune(1) of the project's own resnet18 learner (random weights) on synthetic pets, tracked."
    from finetune_lab.data import pets_dls
    from finetune_lab.models import build_learner
    dls = pets_dls(source='synthetic', n_images=32, size=64, bs=8, verbose=False)
    learn = build_learner(dls, arch='resnet18', pretrained=False)
    w0 = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.fine_tune(1, base_lr=1e-2, cbs=WeightChangeTracker())
    return learn, w0, learn.weight_history


def test_resnet_layer_table(resnet_run):
    learn, _, h = resnet_run
    model = learn.model
    owners = [n for n, m in model.named_modules() if list(m.parameters(recurse=False))]
    assert h.layers.path.tolist() == owners
    assert h.layers.n_params.sum() == sum(p.numel() for p in model.parameters())
    assert h.layers.group.is_monotonic_increasing and h.n_groups == 3 == len(learn.opt.param_lists)
    assert (h.layers.part == np.where(h.layers.path.str.startswith('1.'), 'head', 'body')).all()
    kinds = dict(zip(h.layers.path, h.layers.kind))
    assert kinds['0.0'] == 'conv' and kinds['0.1'] == 'batchnorm' and kinds[owners[-1]] == 'linear'
    # every layer's group is the optimizer group that holds its weight
    groups = {id(p): g for g, pg in enumerate(learn.opt.param_lists) for p in pg}
    mods = dict(model.named_modules())
    assert [groups[id(mods[n].weight)] for n in h.layers.path] == h.layers.group.tolist()
    # names a person can read: torchvision's own module paths in the body, the head's layers counted by kind
    names = dict(zip(h.layers.path, h.layers.name))
    assert (names['0.0'], names['0.1'], names['0.4.0.conv1'], names['0.7.1.bn2']) == ('conv1', 'bn1', 'layer1.0.conv1', 'layer4.1.bn2')
    assert h.layers.name[h.layers.part == 'head'].tolist() == ['head.bn1', 'head.lin1', 'head.bn2', 'head.lin2']


def test_resnet_frozen_phase(resnet_run):
    _, w0, h = resnet_run
    (ph, fit, a, b), (ph2, fit2, _, c) = h.phase_spans()
    assert (ph, fit, ph2, fit2, c) == ('frozen', 0, 'unfrozen', 1, len(h.steps))
    d = h.phase_change(a, b)
    body, kind = (h.layers.part == 'body').to_numpy(), h.layers.kind.to_numpy()
    assert (d[body & (kind == 'conv')] == 0).all() and (h.change[:b, body & (kind == 'conv')] == 0).all()
    assert (d[body & (kind == 'batchnorm')] > 0).all()          # train_bn=True
    assert (d[~body & (kind != 'batchnorm')] > 0).all()
    assert (h.change[-1] > 0).all()                             # everything moved once unfrozen
    # reference = the weights before fine_tune, for a body conv deep in the net
    n = [x for x in h.layers.path if x.startswith('0.7') and h.layers.set_index('path').kind[x] == 'conv'][-1]
    W = dict(resnet_run[0].model.named_parameters())[f'{n}.weight'].detach()
    expect = float((W - w0[f'{n}.weight']).norm() / w0[f'{n}.weight'].norm())
    assert h.change[-1, h.layers.path.tolist().index(n)] == pytest.approx(expect, rel=1e-4)


def test_resnet_epochs_match_recorder(resnet_run):
    learn, _, h = resnet_run
    last = h.epochs.iloc[-len(learn.recorder.values):]
    assert np.array_equal(last[['train_loss', 'valid_loss', 'error_rate']].to_numpy(), np.array(learn.recorder.values, float))
    assert h.epochs.phase.tolist() == ['frozen', 'unfrozen']


def test_resnet_round_trip(resnet_run, tmp_path):
    h = resnet_run[2]
    assert RunHistory.load(h.save(tmp_path/'sub'/'run.npz')).equals(h)
    with np.load(tmp_path/'sub'/'run.npz', allow_pickle=False) as z: assert 'meta' in z.files  # readable without pickle


def test_flat_model_head_is_last_group():
    learn = flat_learner()
    learn.fine_tune(1, cbs=WeightChangeTracker())
    h = learn.weight_history
    assert h.layers.name.tolist() == ['stem', 'bn', 'mid', 'fc']
    assert h.layers.part.tolist() == ['body', 'body', 'body', 'head'] and h.layers.group.tolist() == [0, 0, 1, 2]
    d = h.phase_change(*h.phase_spans()[0][2:])
    assert d.tolist()[0] == 0 and d[2] == 0 and d[1] > 0 and d[3] > 0


class Norms(nn.Module):
    "A conv, an affine InstanceNorm (one of fastai's norm types), a GroupNorm (not one) and a classifier."
    def __init__(self):
        super().__init__()
        self.stem, self.inorm, self.gn, self.fc = nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4, affine=True), nn.GroupNorm(2, 4), nn.Linear(4, 2)
    def forward(self, x): return self.fc(self.gn(self.inorm(self.stem(x))).relu().mean((2, 3)))


def test_instance_norm_is_a_norm_layer():
    "InstanceNorm is a norm layer as fastai's train_bn sees it: trainable while frozen, and not what makes the phase 'unfrozen'."
    split = lambda m: [params(m.stem)+params(m.inorm)+params(m.gn), params(m.fc)]
    learn = Learner(tiny_dls(), Norms(), loss_func=CrossEntropyLossFlat(), splitter=split)
    learn.fine_tune(1, cbs=WeightChangeTracker())
    h = learn.weight_history
    assert h.layers.kind.tolist() == ['conv', 'instancenorm', 'other', 'linear']
    assert h.steps.phase.tolist() == ['frozen']*3 + ['unfrozen']*3
    assert h.trainable[:3].tolist() == [[False, True, False, True]]*3      # train_bn: InstanceNorm trains, GroupNorm is frozen
    d = h.phase_change(*h.phase_spans()[0][2:])
    assert d[0] == 0 and d[1] > 0 and d[2] == 0 and d[3] > 0


def test_optim_wrapper_betas():
    "A wrapped PyTorch optimizer reports beta1 as momentum."
    learn = flat_learner(opt_func=partial(OptimWrapper, opt=torch.optim.AdamW))
    learn.fit_one_cycle(1, 1e-2, cbs=WeightChangeTracker())
    s = learn.weight_history.steps
    assert s.mom_0.between(0.85, 0.95).all() and s.mom_0.nunique() > 1
    assert np.allclose(s.lr_2, learn.recorder.lrs)


@pytest.mark.parametrize('flush', [1, 2, 256])
def test_flush_size_does_not_change_history(flush):
    res = []
    for f in (flush, 5):
        learn = flat_learner()
        learn.fit(2, 1e-2, cbs=(tr := WeightChangeTracker(flush=f)))
        res.append(tr.history)
    h = res[0]
    # times differ between runs; everything else must be identical
    assert res[0].epochs.drop(columns='time').equals(res[1].epochs.drop(columns='time'))
    for k in ('change', 'update', 'trainable', 'bn_stats'): assert np.array_equal(getattr(h, k), getattr(res[1], k), equal_nan=k != 'trainable')


class TorchPathTracker(WeightChangeTracker):
    "A tracker that computes every norm with torch, as on a GPU or without numba."
    def _take_reference(self):
        super()._take_reference(); self._np = [None]*len(self._np)

@pytest.mark.parametrize('channels_last', [False, True])
def test_fused_cpu_norms_match_torch(channels_last):
    "Two trackers on one run, the numba pass (the CPU default) and the torch path, record the same history."
    import finetune_lab.tracker as T
    if T.fused_sq_norms is None: pytest.skip('numba is not installed: only the torch path exists')
    from finetune_lab.data import pets_dls
    from finetune_lab.models import build_learner
    learn = build_learner(pets_dls(source='synthetic', n_images=24, size=32, bs=8, verbose=False), arch='resnet18', pretrained=False)
    if channels_last: learn.to_channelslast(use_amp=False)
    learn.fine_tune(1, base_lr=1e-2, cbs=[fused := WeightChangeTracker(), plain := TorchPathTracker()])
    assert sum(x is not None for x in fused._np) == len(fused._params) and set(plain._np) == {None}
    a, b = fused.history, plain.history
    assert len(a.steps) == len(b.steps) >= 4 and a.steps.equals(b.steps)
    for k in ('change', 'update'):
        moved = getattr(b, k) > 0
        assert np.array_equal(getattr(a, k) > 0, moved)                 # the same exact zeros: frozen layers
        np.testing.assert_allclose(getattr(a, k)[moved], getattr(b, k)[moved], rtol=5e-4)   # torch sums in float32
    np.testing.assert_array_equal(a.bn_stats, b.bn_stats)
    # against float64 arithmetic on the final weights, the fused pass (float64 sums) is the closer of the two
    exact = np.array([np.sqrt(sum(((p.detach().double() - r.double())**2).sum().item() for p,r in zip(m.parameters(recurse=False), refs))) /
                      np.sqrt(sum((r.double()**2).sum().item() for r in refs))
                      for m,refs in zip(fused._mods, [[fused._ref[i] for i in np.flatnonzero(fused._pidx.numpy() == j)] for j in range(len(fused._mods))])])
    err = lambda h: np.max(np.abs(h.change[-1] - exact)/exact)
    assert err(a) < 1e-6 and err(a) <= err(b), (err(a), err(b))


def test_history_mid_fit():
    "`history` can be built during a fit, and again later, without disturbing the recording."
    seen = []
    class Peek(Callback):
        order = WeightChangeTracker.order + 1
        def after_batch(self):
            if self.training: seen.append(self.learn.weight_history)
    learn = flat_learner()
    learn.fit(1, 1e-2, cbs=[WeightChangeTracker(flush=2), Peek()])
    assert [len(h.steps) for h in seen] == [1, 2, 3] and all(h.interrupted for h in seen)
    h = learn.weight_history
    assert not h.interrupted and np.array_equal(h.change[:2], seen[1].change)


def test_bad_arguments():
    with pytest.raises(ValueError, match='every must be'): WeightChangeTracker(every=1.5)
    with pytest.raises(ValueError, match='flush must be'): WeightChangeTracker(flush=0)
    for k in ('every', 'flush'):   # a bool is an int to Python, but True is not a number of steps
        with pytest.raises(ValueError, match=f'{k} must be a whole number >= 1'): WeightChangeTracker(**{k: True})
    with pytest.raises(ValueError, match='must be a dict'): WeightChangeTracker(config=[1])


# --- runs that end early ----------------------------------------------------------------------------

class BreakAt(Callback):
    "Raise `exc` after the tracker has recorded training batch `n` (counted from 1 over all fits)."
    order = WeightChangeTracker.order + 1
    def __init__(self, n, exc): self.n, self.exc, self.i = n, exc, 0
    def after_batch(self):
        if not self.training: return
        self.i += 1
        if self.i == self.n: raise self.exc()


def test_saved_file_marked_interrupted_when_fit_breaks_off(tmp_path):
    "A `fname=` file never reads as a finished run while a fit is broken off: it holds every epoch begun before, marked interrupted."
    learn, p = flat_learner(), tmp_path/'run.npz'
    p.write_bytes(b'an older run')   # what a previous run left there must not survive as this run's history
    with pytest.raises(KeyboardInterrupt):   # 3 batches an epoch: frozen 1-3, unfrozen 4-6 | 7-9; break in the second unfrozen epoch
        learn.fine_tune(2, base_lr=1e-2, cbs=[WeightChangeTracker(fname=p), BreakAt(8, KeyboardInterrupt)])
    h = RunHistory.load(p)
    assert h.interrupted and len(h.steps) == 6 and h.steps.phase.tolist() == ['frozen']*3 + ['unfrozen']*3


def test_early_stopping_is_a_normal_end(tmp_path):
    "fastai's EarlyStoppingCallback ends a fit on purpose: not an interruption; any other cancel still is."
    from fastai.callback.tracker import EarlyStoppingCallback
    learn, p = flat_learner(), tmp_path/'run.npz'
    with learn.no_logging():   # min_delta=10: no epoch after the first counts as better, so it stops after 2 of 5
        learn.fit(5, 1e-2, cbs=[tr := WeightChangeTracker(fname=p), EarlyStoppingCallback(min_delta=10, patience=1)])
    assert len(tr.history.epochs) == 2 and not tr.history.interrupted and RunHistory.load(p).equals(tr.history)
    from fastai.callback.core import CancelFitException
    learn.fit(1, 1e-2, cbs=[tr := WeightChangeTracker(), BreakAt(2, CancelFitException)])
    assert tr.history.interrupted and len(tr.history.steps) == 2


def test_fit_resumed_at_a_later_epoch_is_a_fit(tmp_path):
    "`fit(start_epoch=k)` skips k epochs without training (fastai's SkipToEpoch): the fit still counts, and its file is saved as finished."
    learn, p = flat_learner(), tmp_path/'run.npz'
    learn.fit(3, 1e-2, start_epoch=1, cbs=(tr := WeightChangeTracker(fname=p)))
    h = RunHistory.load(p)
    assert not h.interrupted and h.equals(tr.history) and len(h.epochs) == 2 and h.steps.fit.unique().tolist() == [0]


CTRL_C_SCRIPT = """
import os, signal, sys
sys.path.insert(0, sys.argv[2])
from test_tracker import flat_learner, BreakAt, WeightChangeTracker
class CtrlC(BreakAt):
    def __init__(self, n): super().__init__(n, None)
    def after_batch(self):
        if self.training: self.i += 1
        if self.training and self.i == self.n: os.kill(os.getpid(), signal.SIGINT)   # Python raises KeyboardInterrupt right here
learn = flat_learner()
learn.fine_tune(2, base_lr=1e-2, cbs=[WeightChangeTracker(fname=sys.argv[1]), CtrlC(5)])
"""

@pytest.mark.slow   # a whole Python process, torch and fastai imported
def test_ctrl_c_in_own_script_saves_every_recorded_step(tmp_path):
    "Ctrl-C in a user's own script: the KeyboardInterrupt ends the process, and the file holds every step recorded, marked interrupted."
    import subprocess, sys
    p = tmp_path/'run.npz'
    r = subprocess.run([sys.executable, '-c', CTRL_C_SCRIPT, str(p), str(Path(__file__).parent)], capture_output=True, text=True,
                       timeout=300, env={**__import__('os').environ, 'OMP_NUM_THREADS': '1'})
    assert 'KeyboardInterrupt' in r.stderr, r.stderr[-3000:]
    h = RunHistory.load(p)
    assert h.interrupted and h.steps.phase.tolist() == ['frozen']*3 + ['unfrozen']*2


# --- damaged files -------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    learn = flat_learner()
    learn.fit(1, 1e-2, cbs=(tr := WeightChangeTracker(config=dict(lr=1e-2, arch='flat'))))
    p = tmp_path_factory.mktemp('h')/'run.npz'
    tr.history.save(p)
    with np.load(p, allow_pickle=False) as z: arrays = {k: z[k] for k in z.files}
    return p, arrays


def _write(path, arrays, **changes):
    d = dict(arrays)
    for k, v in changes.items():
        if v is None: d.pop(k)
        else: d[k] = v
    with open(path, 'wb') as f: np.savez(f, **d)
    return path


def _meta(arrays, drop=(), **kw):
    m = json.loads(str(arrays['meta']))
    for k in drop: m.pop(k)
    return np.array(json.dumps({**m, **kw}))


BAD = {
    'meta_missing':   lambda a: dict(meta=None),
    'meta_not_json':  lambda a: dict(meta=np.array('{not json')),
    'meta_is_list':   lambda a: dict(meta=np.array('[1, 2]')),
    'meta_numeric':   lambda a: dict(meta=np.zeros(3)),
    'version_str':    lambda a: dict(meta=_meta(a, version='1')),
    'no_tables':      lambda a: dict(meta=_meta(a, drop=['tables'])),
    'config_list':    lambda a: dict(meta=_meta(a, config=[1])),
    'interrupted_int': lambda a: dict(meta=_meta(a, interrupted=1)),
    'unlisted_table': lambda a: dict(meta=_meta(a, tables={'layers': [], 'steps': []})),
    'column_missing': lambda a: {'layers/kind': None},
    'column_2d':      lambda a: {'steps/loss': np.zeros((3, 2))},
    'str_in_numbers': lambda a: {'steps/step': np.array(['a', 'b', 'c'])},
    'float_in_str':   lambda a: {'layers/kind': np.zeros(4)},
    'unknown_kind':   lambda a: {'layers/kind': np.array(['conv', 'batchnorm', 'conv', 'transformer'])},
    'unknown_part':   lambda a: {'layers/part': np.array(['body', 'body', 'body', 'tail'])},
    'lr_gap':         lambda a: dict(meta=_meta(a, tables={**json.loads(str(a['meta']))['tables'],
                                    'steps': [c for c in json.loads(str(a['meta']))['tables']['steps'] if c != 'lr_1']})),
    'change_1d':      lambda a: dict(change=a['change'][:, 0]),
    'update_rows':    lambda a: dict(update=a['update'][:2]),
    'bn_cols':        lambda a: dict(bn_stats=a['bn_stats'][:, :2]),
    'trainable_int':  lambda a: dict(trainable=a['trainable'].astype(int)),
    'object_array':   lambda a: dict(change=np.array([[None]*4]*3, dtype=object)),
}


@pytest.mark.parametrize('kind', list(BAD))
def test_load_rejects(saved, tmp_path, kind):
    p, arrays = saved
    bad = _write(tmp_path/f'{kind}.npz', arrays, **BAD[kind](arrays))
    with pytest.raises(ValueError, match='Cannot read .* as a RunHistory'): RunHistory.load(bad)


@pytest.mark.parametrize('cut', [0, 1, 22, 100, 1000, -100, -1])
def test_load_rejects_truncated(saved, tmp_path, cut):
    data = saved[0].read_bytes()
    (tmp_path/'t.npz').write_bytes(data[:cut] if cut else b'')
    with pytest.raises(ValueError, match='Cannot read'): RunHistory.load(tmp_path/'t.npz')


def test_load_other_files(saved, tmp_path):
    with pytest.raises(FileNotFoundError): RunHistory.load(tmp_path/'missing.npz')
    with pytest.raises(ValueError, match='Cannot read'): RunHistory.load(tmp_path)            # a folder
    np.save(tmp_path/'a.npy', np.zeros(3))
    with pytest.raises(ValueError, match='Cannot read'): RunHistory.load(tmp_path/'a.npy')    # a plain .npy
    (tmp_path/'h.json').write_text('{"format": "finetune_lab.RunHistory"}')
    with pytest.raises(ValueError, match='Cannot read'): RunHistory.load(tmp_path/'h.json')
    with zipfile.ZipFile(tmp_path/'z.npz', 'w') as z: z.writestr('readme.txt', 'hello')
    with pytest.raises(ValueError, match='Cannot read'): RunHistory.load(tmp_path/'z.npz')


def test_load_ok_then_equal(saved, tmp_path):
    "The writer's own file loads; an untouched re-write of its arrays loads equal."
    p, arrays = saved
    h = RunHistory.load(p)
    assert h.config == dict(lr=1e-2, arch='flat') and RunHistory.load(_write(tmp_path/'same.npz', arrays)).equals(h)


def test_save_rejects_objects(saved, tmp_path):
    h = RunHistory.load(saved[0])
    h.layers['extra'] = [object()]*len(h.layers)
    with pytest.raises(ValueError, match='only numbers and strings'): h.save(tmp_path/'x.npz')


# --- on a GPU: no host sync while recording --------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_no_sync_per_step():
    "On CUDA, recording a step never synchronises with the host (only the flush copies rows back)."
    class NoSync(Callback):
        "Turn on torch's sync debug mode around the tracker's after_batch."
        order = WeightChangeTracker.order - 0.5
        def after_batch(self): torch.cuda.set_sync_debug_mode('error')
    class SyncOK(Callback):
        order = WeightChangeTracker.order + 1
        def after_batch(self): torch.cuda.set_sync_debug_mode(0)
    dls = tiny_dls(); dls.to('cuda')
    split = lambda m: [params(m.stem)+params(m.bn), params(m.mid), params(m.fc)]
    learn = Learner(dls, Flat(), loss_func=CrossEntropyLossFlat(), splitter=split, metrics=error_rate)
    try: learn.fit(1, 1e-2, cbs=[NoSync(), (tr := WeightChangeTracker(flush=1000)), SyncOK()])
    finally: torch.cuda.set_sync_debug_mode(0)
    h = tr.history
    assert len(h.steps) == 3 and (h.change[-1] > 0).all()
