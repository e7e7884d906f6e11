"The science of fine-tuning, through `run(Config)`: what fastai's methods did to each layer, per phase."
import dataclasses, threading
import numpy as np, pytest
from fastcore.basics import even_mults
from fastai.callback.schedule import combined_cos
from finetune_lab.experiment import Config, run, STRATEGIES, body_change, get_dls, scheduled_peaks
from finetune_lab.data import is_cat
from finetune_lab.history import RunHistory

TINY = Config(source='synthetic', n_images=32, n_valid=8, size=64, arch='efficientnet_lite0', bs=16)

@pytest.fixture(scope='module')
def ft(): return run(TINY, progress=False)

def _cols(h, part=None, kinds=None):
    m = np.ones(len(h.layers), bool)
    if part: m &= (h.layers['part'] == part).values
    if kinds: m &= h.layers['kind'].isin(kinds).values
    return m

def _rows(h, phase): return (h.steps['phase'] == phase).values

def test_frozen_phase_body_exactly_zero_bn_and_head_move(ft):
    fr = _rows(ft, 'frozen')
    assert fr.sum() > 0
    assert ft.change[fr][:, _cols(ft, 'body', ['conv', 'linear'])].max() == 0.0
    assert ft.change[fr][:, _cols(ft, 'body', ['batchnorm'])].max() > 0      # train_bn=True: norm layers train
    assert (ft.change[fr][-1, _cols(ft, 'head', ['linear'])] > 0).all()
    assert not ft.trainable[fr][:, _cols(ft, 'body', ['conv'])].any()

def test_train_bn_false_freezes_norm_layers_too():
    h = run(TINY.replace(train_bn=False, keep_bn_stats=False, epochs=1), progress=False)
    fr = _rows(h, 'frozen')
    assert h.change[fr][:, _cols(h, 'body')].max() == 0.0
    # ...but (fastai's own BatchNorm handling, keep_bn_stats=False) their running statistics still drift: they are
    # buffers, updated in train mode (FASTAI_NOTES)
    assert np.nanmax(h.bn_stats[fr][:, _cols(h, 'body', ['batchnorm'])]) > 0

def test_freeze_epochs_zero_has_no_frozen_phase():
    h = run(TINY.replace(freeze_epochs=0), progress=False)
    assert 'frozen' not in set(h.steps['phase']) and len(h.steps) > 0
    assert set(h.epochs['phase']) == {'unfrozen'}

def test_head_only_body_never_moves():
    h = run(TINY.replace(strategy='head_only'), progress=False)
    assert body_change(h) == 0.0 and set(h.steps['phase']) == {'frozen'}
    assert len(h.epochs) == TINY.freeze_epochs + TINY.epochs

def test_discriminative_lrs_first_group_moves_less_than_head(ft):
    un = _rows(ft, 'unfrozen'); first = ft.steps.index[un][0] - 1
    moved = np.abs(ft.change[un][-1] - ft.change[first])  # change accumulated while unfrozen
    g0 = moved[((ft.layers['group'] == 0) & ft.layers['kind'].isin(['conv'])).values]
    head = moved[_cols(ft, 'head', ['linear'])]
    assert np.median(g0) < np.median(head)

def _expected_lrs(peaks, n, pct_start, div):
    "fastai's one-cycle LR at each of a fit's `n` steps, for each group's peak LR."
    sched = combined_cos(pct_start, np.array(peaks)/div, np.array(peaks), np.array(peaks)/1e5)
    return np.stack([sched(i/n) for i in range(n)])

@pytest.mark.parametrize('strategy', ['fine_tune', pytest.param('gradual', marks=pytest.mark.slow)])
def test_recorded_lrs_are_fastais_even_mults_spread(strategy):
    cfg = TINY.replace(strategy=strategy, bs=8)     # 3 steps per epoch
    h = run(cfg, progress=False)
    G, lr = h.n_groups, cfg.base_lr
    assert h.planned_lr == scheduled_peaks(cfg, G)   # what the strategy aimed at is kept with the run, fit by fit
    np.testing.assert_allclose(h.planned_lr[0], [lr/10]*(G-1) + [lr])
    for ph, peaks, pct, div in [('frozen', [lr/10]*(G-1) + [lr], 0.99, 25.),                          # slice(lr)
                                ('unfrozen', even_mults(lr/2/cfg.lr_mult, lr/2, G), 0.3, 5.)]:     # slice(lr/2/lr_mult, lr/2)
        rec = h.steps[h.steps.phase == ph][[f'lr_{i}' for i in range(G)]].values
        np.testing.assert_allclose(rec, _expected_lrs(peaks, len(rec), pct, div), rtol=1e-5)
    if strategy == 'gradual':  # freeze_to(-2): the middle stage gets the same spread
        rec = h.steps[h.steps.phase == 'frozen_to 1'][[f'lr_{i}' for i in range(G)]].values
        np.testing.assert_allclose(rec, _expected_lrs(even_mults(lr/2/cfg.lr_mult, lr/2, G), len(rec), 0.3, 5.), rtol=1e-5)

def test_no_discriminative_uses_one_lr():
    h = run(TINY.replace(strategy='no_discriminative', bs=8), progress=False)
    un = h.steps[h.steps.phase == 'unfrozen'][[f'lr_{i}' for i in range(h.n_groups)]].values
    np.testing.assert_allclose(un, _expected_lrs([TINY.base_lr/2/TINY.lr_mult**.5]*h.n_groups, len(un), 0.3, 5.), rtol=1e-5)

def test_same_config_same_history(ft):
    h = run(TINY, progress=False)
    for k in ('change', 'update', 'trainable'): np.testing.assert_array_equal(getattr(h, k), getattr(ft, k))
    np.testing.assert_array_equal(h.steps['loss'].values, ft.steps['loss'].values)
    assert h.config == ft.config

def test_history_records_resolved_config(ft):
    assert ft.config['arch'] == 'efficientnet_lite0' and ft.config['source'] == 'synthetic'
    assert Config.from_dict(ft.config) == TINY.resolved() and ft.config['keep_bn_stats'] is True  # 'auto' on effnet

# Every Config field rejects a wrong type and an out-of-range value with a message naming it.
BAD = dict(source=[3, 'nowhere_folder'], n_images=['many', 2], size=[64.5, 8], arch=[None, 'vgg'], pretrained=['yes', 1],
           head_depth=[1.0, 6], head_width=['wide', 0], ps=['half', 1.0], concat_pool=[1, 'no'], strategy=[None, 'fast'], freeze_epochs=[True, 21],
           epochs=[1.5, 0], base_lr=['1e-3', 0.0], lr_mult=[None, 0.5], train_bn=[0, 'no'], keep_bn_stats=[1, 'yes'], bs=[None, 0],
           seed=[-1, 'x'], track_every=[0.5, 0], valid_pct=['0.2', 0.99], surgical_group=[0.5, 2],
           n_valid=['many', 3], seeds=[0, 1.5])

def test_every_field_has_bad_values_listed():
    assert set(BAD) == {f.name for f in dataclasses.fields(Config)}

@pytest.mark.parametrize('name,value', [(k, v) for k, vs in BAD.items() for v in vs])
def test_config_rejects_bad_values(name, value):
    with pytest.raises(ValueError, match=f"Config.{name}="): Config(**{name: value})

def test_run_rejects_non_config():
    with pytest.raises(TypeError, match='Config'): run(dict(head_depth=2))


def rss_mb(): return int(open('/proc/self/statm').read().split()[1])*4096/2**20

@pytest.mark.skipif(not __import__('os').path.exists('/proc/self/statm'), reason='needs Linux /proc to read the RSS')
def test_release_memory_hands_freed_heap_back():
    "After many small freed allocations glibc keeps the pages; release_memory returns them (what run() does after each run)."
    import ctypes
    from finetune_lab.experiment import release_memory
    try: ctypes.CDLL('libc.so.6').malloc_trim
    except (OSError, AttributeError): pytest.skip('not glibc: malloc_trim does not exist, release_memory only collects garbage')
    chunks = [bytearray(4000) for _ in range(40_000)]   # ~160 MB in malloc'd blocks
    keep = chunks[::16]                                  # pinned blocks stop the heap from simply shrinking at its top
    del chunks
    before = rss_mb()
    release_memory()
    assert before - rss_mb() > 80, (before, rss_mb())
    del keep


def test_run_records_the_baselines_it_must_beat(ft, tmp_path):
    "Majority-class error of the run's own validation images, and the untrained ImageNet classifier's error on them."
    from pathlib import Path
    cats = np.mean([is_cat(Path(f).name) for f in get_dls(TINY).valid_ds.items])
    assert ft.baselines['majority'] == pytest.approx(min(cats, 1 - cats)) and 0 <= ft.baselines['zero_shot'] <= 1
    assert RunHistory.load(ft.save(tmp_path/'h.npz')).baselines == ft.baselines
    assert 'zero_shot' not in run(TINY.replace(pretrained=False, epochs=1, freeze_epochs=0), progress=False).baselines

def test_keep_bn_stats_keeps_the_body_running_statistics():
    "keep_bn_stats=True: the body's BatchNorm running mean/var never move; False (fastai's default): they drift."
    body_bn = lambda h: h.bn_stats[:, _cols(h, 'body', ['batchnorm'])]
    kept, drift = (run(TINY.replace(keep_bn_stats=k, freeze_epochs=1, epochs=1), progress=False) for k in (True, False))
    assert (body_bn(kept) == 0).all() and (body_bn(drift) > 0).all()
    assert (kept.config['keep_bn_stats'], drift.config['keep_bn_stats']) == (True, False)


# --- the papers' strategies: lp_ft, surgical, ulmfit_lrs -----------------------------------------------------------
from finetune_lab.experiment import ulmfit_lr_mult, STRATEGY_FUNCS

def _group_cols(h, g, kinds=('conv', 'linear')): return ((h.layers['group'] == g) & h.layers['kind'].isin(kinds)).values

def test_every_strategy_has_a_function_and_reaches_lab_and_cli():
    from finetune_lab import cli, lab
    assert set(STRATEGY_FUNCS) == set(STRATEGIES) >= {'lp_ft', 'surgical', 'ulmfit_lrs'}
    p = cli.build_parser()
    args = p.parse_args(['run', '--strategy', 'surgical', '--surgical-group', '1'])
    assert cli.config_from(**cli.config_overrides(args)).surgical_group == 1
    assert set(lab.Lab(run_dir=None).controls['strategy'].options) == set(STRATEGIES)

@pytest.mark.slow   # test_experiment_papers.py checks lp_ft's probe on a run of its own
def test_lp_ft_probe_is_a_real_linear_probe():
    "While probing, nothing in the body moves: weights, norm layers, BatchNorm statistics (even with fastai's BN handling)."
    h = run(TINY.replace(strategy='lp_ft', head_depth=0, keep_bn_stats=False, train_bn=True), progress=False)
    fr, un, body = _rows(h, 'frozen'), _rows(h, 'unfrozen'), _cols(h, 'body')
    assert fr.sum() > 0 and un.sum() > 0
    assert h.change[fr][:, body].max() == 0.0 and np.nanmax(h.bn_stats[fr][:, body]) == 0.0 and not h.trainable[fr][:, body].any()
    assert (h.change[fr][-1, _cols(h, 'head', ['linear'])] > 0).all()
    assert h.change[un][-1, _cols(h, 'body', ['conv'])].max() > 0 and np.nanmax(h.bn_stats[un][:, _cols(h, 'body', ['batchnorm'])]) > 0
    # ...whereas fastai's own frozen phase trains the body's norm layers and lets their statistics drift
    ft = run(TINY.replace(keep_bn_stats=False), progress=False)
    assert ft.change[_rows(ft, 'frozen')][:, _cols(ft, 'body', ['batchnorm'])].max() > 0

def test_surgical_refuses_the_head_group():
    from finetune_lab.experiment import surgical, get_dls
    from finetune_lab.models import build_learner
    learn = build_learner(get_dls(TINY), 'efficientnet_lite0')
    with pytest.raises(ValueError, match='surgical_group=2'): surgical(learn, dataclasses.replace(TINY, surgical_group=2))

def test_ulmfit_lrs_spaces_groups_by_2_6():
    cfg = TINY.replace(strategy='ulmfit_lrs', bs=8)
    h = run(cfg, progress=False)
    G, lr = h.n_groups, cfg.base_lr
    assert ulmfit_lr_mult(G) == pytest.approx(2.6**(G-1))
    un = h.steps[h.steps.phase == 'unfrozen'][[f'lr_{i}' for i in range(G)]].values
    np.testing.assert_allclose(un[:, 1:]/un[:, :-1], 2.6, rtol=1e-6)
    np.testing.assert_allclose(un, _expected_lrs(even_mults(lr/2/2.6**(G-1), lr/2, G), len(un), 0.3, 5.), rtol=1e-5)
    fr = _rows(h, 'frozen')
    assert h.change[fr][:, _cols(h, 'body', ['conv'])].max() == 0.0


# --- a validation set large enough, baselines per photo, repeats over seeds; any Learner ------------
import gc, weakref
from pathlib import Path
from finetune_lab import experiment
from finetune_lab.experiment import baselines, baseline_answers, valid_targets, learner_history, known_arch, cat_index
from finetune_lab.models import build_learner, zero_shot_preds, zero_shot_error, efficientnet_lite0
from finetune_lab.history import repeat_row
from finetune_lab.tracker import WeightChangeTracker


def test_default_config_trains_320_photos_in_20_steps_and_validates_on_400_others():
    c = Config(source='bundled', arch='efficientnet_lite0')
    dls, other = get_dls(c), get_dls(c.replace(seed=7, n_images=160))
    assert (len(dls.train_ds), len(dls.valid_ds), len(dls.train)) == (320, 400, 20)
    names = lambda ds: [Path(f).name for f in ds.items]
    assert names(dls.valid_ds) == names(other.valid_ds)                      # another seed and size: the same photos
    assert not set(names(dls.train_ds)) & set(names(dls.valid_ds))
    assert names(dls.train_ds)[:160] != names(other.train_ds)


def test_config_n_valid_none_is_fastais_random_split():
    dls = get_dls(TINY.replace(n_valid=None, n_images=40))
    assert (len(dls.train_ds), len(dls.valid_ds)) == (32, 8)                 # valid_pct=0.2 of n_images
    with pytest.raises(ValueError, match='leaves 1 to train on'): Config(n_images=8, n_valid=None, valid_pct=0.9)


def test_run_records_each_baselines_answer_per_photo(ft):
    y = ft.valid_targets
    np.testing.assert_array_equal(y, valid_targets(get_dls(TINY)))          # the order of dls.valid
    assert set(ft.baseline_preds) == {'majority', 'zero_shot'} and all(len(p) == len(y) == 8 for p in ft.baseline_preds.values())
    assert (ft.baseline_preds['majority'] == np.bincount(y).argmax()).all()
    for k, p in ft.baseline_preds.items(): assert ft.baselines[k] == pytest.approx(np.mean(p != y))
    dls = get_dls(TINY)
    np.testing.assert_array_equal(ft.baseline_preds['zero_shot'], zero_shot_preds('efficientnet_lite0', dls.valid, dls.vocab.o2i[True]))
    assert zero_shot_error('efficientnet_lite0', dls.valid, dls.vocab.o2i[True]) == pytest.approx(ft.baselines['zero_shot'])


def test_runs_on_the_same_held_out_photos_share_baselines_and_valid_key(ft):
    other = run(TINY.replace(seed=5, n_images=16, freeze_epochs=0), progress=False)
    assert other.valid_key == ft.valid_key != '' and np.array_equal(other.valid_targets, ft.valid_targets)
    assert other.baselines == ft.baselines
    assert all(np.array_equal(other.baseline_preds[k], ft.baseline_preds[k]) for k in ft.baseline_preds)
    assert baseline_answers(TINY, get_dls(TINY)).keys() == baselines(TINY, get_dls(TINY)).keys()


def test_zero_shot_answers_are_kept_on_disk_and_read_back_only_for_the_same_photos(monkeypatch, tmp_path):
    import os
    monkeypatch.setenv('FINETUNE_LAB_CACHE', str(tmp_path/'cache'))
    dls = get_dls(TINY); build_learner(dls, TINY.arch)                       # vision_learner adds the backbone's Normalize
    measured = experiment._zero_shot(TINY, dls)
    np.testing.assert_array_equal(measured, zero_shot_preds(TINY.arch, dls.valid, dls.vocab.o2i[True]))
    f = experiment._answers_file(TINY, dls)
    assert f.is_file() and f.parent.parent == tmp_path/'cache' and not list(f.parent.glob('.*'))   # no temporary file left
    real = experiment.zero_shot_preds
    def measure_again(*a, **k): raise AssertionError('measured again')
    monkeypatch.setattr(experiment, 'zero_shot_preds', measure_again)
    np.testing.assert_array_equal(experiment._zero_shot(TINY, dls), measured)   # read back, not measured
    p = Path(dls.valid.items[0]); st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))                # one photo changed: another key
    try: assert experiment._answers_file(TINY, dls) not in (None, f)
    finally: os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert experiment._answers_file(TINY.replace(size=32), dls) != f         # another image size: another key
    f.write_bytes(b'not a numpy file')                                       # damaged: measured again, and rewritten
    with pytest.raises(AssertionError, match='measured again'): experiment._zero_shot(TINY, dls)
    monkeypatch.setattr(experiment, 'zero_shot_preds', real)
    np.testing.assert_array_equal(experiment._zero_shot(TINY, dls), measured)
    np.testing.assert_array_equal(np.load(f), measured)
    (tmp_path/'a_file').write_text('x'); monkeypatch.setenv('FINETUNE_LAB_CACHE', str(tmp_path/'a_file'))
    np.testing.assert_array_equal(experiment._zero_shot(TINY, dls), measured)   # no usable cache: measured, no error
    assert (tmp_path/'a_file').read_text() == 'x'                            # and nothing kept


@pytest.mark.slow
def test_seeds_repeat_the_run_and_keep_only_the_first_history(monkeypatch):
    refs, row = [], experiment.repeat_row
    monkeypatch.setattr(experiment, 'repeat_row', lambda h: refs.append(weakref.ref(h)) or row(h))
    cfg = TINY.replace(seeds=3, freeze_epochs=0, bs=8)
    h = run(cfg, progress=False)
    gc.collect()
    assert h.repeats.seed.tolist() == [42, 43, 44] and len(refs) == 3
    assert [r() is not None for r in refs] == [True, False, False]            # the other seeds' histories are gone
    assert h.repeats.iloc[0].to_dict() == pytest.approx(repeat_row(h), nan_ok=True)
    moves = h.repeats[[c for c in h.repeats if c.startswith('move_')]].to_numpy()
    assert len(np.unique(moves.round(12), axis=0)) == 3                       # each seed moved the weights differently
    assert h.config['seeds'] == 3 and h.config['seed'] == 42 and Config.from_dict(h.config) == cfg.resolved()
    one = run(TINY.replace(freeze_epochs=0, bs=8), progress=False)
    assert one.repeats.empty and np.array_equal(one.change, h.change)         # seed 42 alone: the same run as row 0


@pytest.mark.slow
def test_stop_ends_the_repeats_too():
    ev, fits = threading.Event(), []
    class _StopSecond(experiment.Callback):
        def before_fit(self): fits.append(1)
        def before_batch(self):
            if len(fits) == 2: ev.set()
    h = run(TINY.replace(seeds=3, strategy='full', bs=8), cbs=_StopSecond(), stop=ev, progress=False)
    assert h.repeats.seed.tolist() == [42] and not h.interrupted and len(fits) == 2


def test_stop_while_preparing_skips_the_baselines_and_trains_nothing(monkeypatch):
    def measured(*a, **k): raise AssertionError('the baselines were measured after Stop')
    monkeypatch.setattr(experiment, '_baselines', measured)
    ev = threading.Event(); ev.set()                                           # Stop pressed while the data was being prepared
    h = run(TINY.replace(seed=11), stop=ev, progress=False)
    assert h.interrupted and len(h.steps) == 0 and h.baselines == {}


def _plain_fastai_learner(arch=efficientnet_lite0, pretrained=True, label=None):
    "A learner a student builds with fastai alone: ImageDataLoaders.from_name_func and vision_learner."
    from fastai.vision.all import ImageDataLoaders, Resize, vision_learner, error_rate
    from finetune_lab.data import synthetic_pets
    files = sorted(synthetic_pets(24, seed=9).glob('*.jpg'))
    dls = ImageDataLoaders.from_name_func(files[0].parent, files, label or is_cat, valid_pct=0.25, seed=1, item_tfms=Resize(32), bs=6, num_workers=0)
    learn = vision_learner(dls, arch, pretrained=pretrained, metrics=error_rate, cbs=WeightChangeTracker())
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1)
    return learn


def test_learner_history_brings_a_students_learner_into_the_views():
    from finetune_lab.plots import plot_report, plot_compare
    from finetune_lab.explain import explain
    import matplotlib.pyplot as plt
    learn = _plain_fastai_learner()
    h = learner_history(learn)
    assert known_arch(learn) == 'efficientnet_lite0' and cat_index(learn.dls) == learn.dls.vocab.o2i[True]
    y = valid_targets(learn.dls)
    np.testing.assert_array_equal(h.valid_targets, y)
    assert set(h.baselines) == set(h.baseline_preds) == {'majority', 'zero_shot'}
    assert h.baselines['majority'] == pytest.approx(np.mean(y != np.bincount(y).argmax()))
    assert h.baselines['zero_shot'] == pytest.approx(zero_shot_error('efficientnet_lite0', learn.dls.valid, cat_index(learn.dls)))
    assert set(h.steps.phase) == {'frozen', 'unfrozen'} and h.change[-1].max() > 0
    assert 'ImageNet' in explain(h) or 'larger class' in explain(h)
    plt.close(plot_report(h)); plt.close(plot_compare([h, h]))


def test_learner_history_leaves_zero_shot_out_when_it_cannot_mean_anything():
    from finetune_lab.models import resnet18
    rand = learner_history(_plain_fastai_learner(resnet18, pretrained=False))   # no ImageNet weights
    assert list(rand.baselines) == ['majority'] and list(rand.baseline_preds) == ['majority']
    words = learner_history(_plain_fastai_learner(label=lambda n: 'cat' if is_cat(n) else 'dog'))
    assert set(words.baselines) == {'majority', 'zero_shot'}                         # 'cat'/'dog' labels are understood
    odd = _plain_fastai_learner(label=lambda n: int(n.split('_')[1].split('.')[0]) % 3 == 0)   # True/False, but not is_cat
    assert cat_index(odd.dls) is None and list(learner_history(odd).baselines) == ['majority']


def test_a_students_vision_learner_gets_its_blocks_named():
    import torchvision
    firsts = lambda learn: {n.split('.')[0] for n in learn.weight_history.layers.name}
    assert {'conv_stem', 'stage3', 'conv_head'} <= firsts(_plain_fastai_learner())                       # ours, through vision_learner
    assert {'conv1', 'layer1', 'layer4'} <= firsts(_plain_fastai_learner(torchvision.models.resnet18, pretrained=False))  # fastbook's way
    assert not any(n.startswith('body.') for n in _plain_fastai_learner().weight_history.layers.name)


def test_learner_history_needs_a_tracker():
    from fastai.vision.all import vision_learner
    from finetune_lab.models import resnet18
    learn = vision_learner(get_dls(TINY), resnet18, pretrained=False)
    with pytest.raises(RuntimeError, match='WeightChangeTracker'): learner_history(learn)
