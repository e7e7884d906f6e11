"check_freezing (issue 16): the traps users report, caught on a user's own Learner, and each warning true to what training then does."
import warnings
import pytest, torch
from torch import nn
from torch.utils.data import TensorDataset
from fastai.vision.all import DataLoaders, Learner, params, set_seed, CrossEntropyLossFlat, error_rate
from finetune_lab.freezing import check_freezing, bare_model
from finetune_lab.tracker import WeightChangeTracker

def learner(splitter=True, seed=0, **kw):
    set_seed(seed, reproducible=True)
    x = torch.randn(32, 3, 16, 16); y = (x[:, 0].mean((1, 2)) > 0).long()
    dls = DataLoaders.from_dsets(TensorDataset(x[:24], y[:24]), TensorDataset(x[24:], y[24:]), bs=8, device='cpu')
    blk = lambda ni, nf: nn.Sequential(nn.Conv2d(ni, nf, 3, padding=1), nn.BatchNorm2d(nf), nn.ReLU())
    model = nn.Sequential(nn.Sequential(blk(3, 8), blk(8, 8)), nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)))
    if splitter is True: kw['splitter'] = lambda m: [params(m[0][0]), params(m[0][1]), params(m[1])]
    elif splitter: kw['splitter'] = splitter
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=error_rate, **kw)

def fit(learn, *a):
    with learn.no_bar(), learn.no_logging(): learn.fit(*a)

def conv0(learn): return bare_model(learn.model)[0][0][0].weight

def test_one_group_trap_caught_and_real():
    learn = learner(splitter=False); learn.freeze()
    fc = check_freezing(learn)
    assert 'nothing_to_freeze' in fc.warnings and 'one parameter group' in fc.warnings['nothing_to_freeze']
    w = conv0(learn).detach().clone(); fit(learn, 1, 1e-2)
    assert (conv0(learn) - w).abs().max() > 0      # "frozen" body trained: the warning was right

def test_three_groups_frozen_is_fine():
    learn = learner(); learn.freeze()
    fc = check_freezing(learn)
    assert fc.ok and fc.table.trains.tolist() == ['norm layers only', 'norm layers only', 'yes']
    w = conv0(learn).detach().clone(); fit(learn, 1, 1e-2)
    assert (conv0(learn) - w).abs().max() == 0

def test_params_in_no_group_caught_and_never_train():
    learn = learner(splitter=lambda m: [params(m[0][0]), params(m[1])])
    fc = check_freezing(learn)
    assert 'no_group' in fc.warnings and fc.table.group.tolist()[-1] == 'none' and fc.table.holds.iloc[-1] == '0.1'
    assert fc.table.params.iloc[-1] == sum(p.numel() for p in learn.model[0][1].parameters())
    w = learn.model[0][1][0].weight.detach().clone(); fit(learn, 1, 1e-2)
    assert (learn.model[0][1][0].weight - w).abs().max() == 0

def test_frozen_weights_the_optimizer_still_steps():
    learn = learner(); fit(learn, 1, 1e-2)
    for p in learn.model[0].parameters(): p.requires_grad_(False)
    fc = check_freezing(learn)
    assert {'frozen_stepped', 'frozen_state'} <= set(fc.warnings)
    assert fc.table.frozen_with_state.tolist()[:2] == [sum(p.numel() for p in learn.model[0][i].parameters()) for i in (0, 1)]
    w = conv0(learn).detach().clone(); fit(learn, 1, 1e-2)
    assert (conv0(learn) - w).norm() > 1e-3           # it moved although frozen
    learn.freeze_to(2)                                  # fastai's way clears the state, the grads stay
    assert set(check_freezing(learn).warnings) == {'frozen_stepped'}

def test_check_changes_nothing():
    learn = learner()                                   # no optimizer yet: the splitter is read, none is made
    before = [(p.requires_grad, p.grad) for p in learn.model.parameters()]
    check_freezing(learn)
    assert learn.opt is None and before == [(p.requires_grad, p.grad) for p in learn.model.parameters()]

def test_tracker_warns_once_per_trap():
    learn = learner(splitter=False)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        with learn.no_bar(), learn.no_logging(): learn.fine_tune(2, cbs=WeightChangeTracker())
    msgs = [str(w.message) for w in ws if 'WeightChangeTracker' in str(w.message)]
    assert len(msgs) == 1 and 'freeze() would freeze nothing' in msgs[0]

def test_tracker_silent_on_a_well_split_learner():
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        learn = learner()
        with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, cbs=WeightChangeTracker())
    assert not [w for w in ws if 'WeightChangeTracker' in str(w.message)]
