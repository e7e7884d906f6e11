"The papers' strategies do what their papers do: lp_ft (Kumar et al. 2022) and surgical (Lee et al. 2023)."
import numpy as np, pytest
from finetune_lab.experiment import Config, run, planned_fits, PROBE_EPOCHS, lp_ft, get_dls
from finetune_lab.models import build_learner

TINY = Config(source='synthetic', n_images=32, size=64, arch='efficientnet_lite0', bs=16, keep_bn_stats=False, train_bn=True)

def _cols(h, part=None, kinds=None, group=None):
    m = np.ones(len(h.layers), bool)
    if part is not None: m &= (h.layers['part'] == part).values
    if kinds is not None: m &= h.layers['kind'].isin(kinds).values
    if group is not None: m &= (h.layers['group'] == group).values
    return m

def _lrs(h, rows): return h.steps[[f'lr_{g}' for g in range(h.n_groups)]].values[rows]

@pytest.fixture(scope='module')
def lp(): return run(TINY.replace(strategy='lp_ft', head_depth=0), progress=False)

def test_lp_ft_probe_trains_only_the_linear_head(lp):
    probe, body, head = (lp.steps.fit == 0).values, _cols(lp, 'body'), _cols(lp, 'head')
    assert probe.sum() > 0
    assert lp.change[probe][:, body].max() == 0.0                        # no body weight, norm layer included
    assert np.nanmax(lp.bn_stats[probe][:, body]) == 0.0                 # no body BatchNorm statistic
    assert not lp.trainable[probe][:, body].any() and lp.trainable[probe][:, head].all()
    assert list(lp.layers['kind'][head]) == ['batchnorm', 'linear']      # the head is standardise -> one Linear
    assert (lp.change[probe][-1, head] > 0).all()

def test_lp_ft_probe_runs_its_fixed_length_then_fine_tunes_everything_at_one_lr(lp):
    assert list(lp.epochs.phase[:PROBE_EPOCHS]) == ['frozen']*PROBE_EPOCHS and len(lp.epochs) == PROBE_EPOCHS + TINY.epochs
    ft = (lp.steps.fit == 1).values
    assert set(lp.steps.phase[ft]) == {'unfrozen'}
    assert lp.change[ft][-1, _cols(lp, 'body', ['conv'])].max() > 0
    lrs = _lrs(lp, ft)
    np.testing.assert_allclose(lrs, lrs[:, :1].repeat(lp.n_groups, 1))   # one LR for every group, as the paper
    peak = TINY.base_lr/2/np.sqrt(TINY.lr_mult)                            # `one_lr`; a short fit never quite reaches it
    assert peak/5 < lrs.max() <= peak*(1 + 1e-6)

def test_lp_ft_refuses_a_head_with_hidden_layers():
    learn = build_learner(get_dls(TINY), 'efficientnet_lite0', head_depth=1)
    with pytest.raises(ValueError, match='1 hidden layer.*head_depth=0'): lp_ft(learn, TINY)

def test_lp_ft_rehearsed():
    fits = planned_fits(Config(strategy='lp_ft'))
    assert [(f['trains'], f['train_bn'], f['n_epoch']) for f in fits] == [([False, False, True], False, PROBE_EPOCHS), ([True]*3, True, 1)]

@pytest.mark.parametrize('g', [0, pytest.param(1, marks=pytest.mark.slow)])
def test_surgical_trains_its_group_and_the_head_and_nothing_else(g):
    cfg = TINY.replace(strategy='surgical', surgical_group=g, bs=8)
    h = run(cfg, progress=False)
    other, head = _cols(h, 'body', group=1-g), _cols(h, 'head')
    assert h.change[:, other].max() == 0.0 and not h.trainable[:, other].any()        # its norm layers too (train_bn=True!)
    assert np.nanmax(h.bn_stats[:, other & _cols(h, kinds=['batchnorm'])]) == 0.0      # and their running statistics
    mine = _cols(h, 'body', group=g)
    assert h.trainable[:, mine].all() and h.trainable[:, head].all()
    assert h.change[-1, mine & _cols(h, kinds=['conv'])].max() > 0 and (h.change[-1, head & _cols(h, kinds=['linear'])] > 0).all()
    assert np.nanmax(h.bn_stats[:, mine & _cols(h, kinds=['batchnorm'])]) > 0         # its own BatchNorm trains as usual
    lrs = _lrs(h, slice(None))
    np.testing.assert_allclose(lrs, lrs[:, :1].repeat(h.n_groups, 1))
    peak = cfg.base_lr/2/np.sqrt(cfg.lr_mult)
    assert peak/5 < lrs.max() <= peak*(1 + 1e-6) and len(h.epochs) == cfg.freeze_epochs + cfg.epochs

@pytest.mark.slow
@pytest.mark.parametrize('strategy', ['surgical', 'ulmfit_lrs'])
def test_runs_without_imagenet_weights(strategy):
    "vision_learner(pretrained=False) makes no optimizer before the first fit; these read its param groups."
    h = run(Config(strategy=strategy, pretrained=False, source='synthetic', arch='resnet18', n_images=16, size=32, bs=4), progress=False)
    assert h.n_groups == 3 and len(h.steps) > 0 and not h.interrupted
    if strategy == 'surgical': assert h.change[:, _cols(h, 'body', group=1)].max() == 0.0
