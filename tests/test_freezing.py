"check_freezing: the traps users report, caught on a user's own Learner, each warning true to what training then does, and the groups read as fastai's Optimizer reads them, before and after it exists."
import warnings
import pytest
from torch import nn
from torchvision.models import resnet18
from fastai.vision.all import params, CrossEntropyLossFlat, vision_learner, model_meta
from finetune_lab.freezing import check_freezing, bare_model
from finetune_lab.tracker import WeightChangeTracker
from finetune_lab.models import tiny_dls, tiny_learner

def fit(learn, *a):
    with learn.no_bar(), learn.no_logging(): learn.fit(*a)

def conv0(learn): return bare_model(learn.model)[0][0][0].weight

def test_one_group_trap_caught_and_real():
    learn = tiny_learner(splitter=False); learn.freeze()
    fc = check_freezing(learn)
    assert 'nothing_to_freeze' in fc.warnings and 'one parameter group' in fc.warnings['nothing_to_freeze']
    w = conv0(learn).detach().clone(); fit(learn, 1, 1e-2)
    assert (conv0(learn) - w).abs().max() > 0      # "frozen" body trained: the warning was right

def test_three_groups_frozen_is_fine():
    learn = tiny_learner(); learn.freeze()
    fc = check_freezing(learn)
    assert fc.ok and fc.table.trains.tolist() == ['norm layers only', 'norm layers only', 'yes']
    w = conv0(learn).detach().clone(); fit(learn, 1, 1e-2)
    assert (conv0(learn) - w).abs().max() == 0

def test_params_in_no_group_caught_and_never_train():
    learn = tiny_learner(splitter=lambda m: [params(m[0][0]), params(m[1])])
    fc = check_freezing(learn)
    assert 'no_group' in fc.warnings and fc.table.group.tolist()[-1] == 'none' and fc.table.holds.iloc[-1] == '0.1'
    assert fc.table.params.iloc[-1] == sum(p.numel() for p in learn.model[0][1].parameters())
    w = learn.model[0][1][0].weight.detach().clone(); fit(learn, 1, 1e-2)
    assert (learn.model[0][1][0].weight - w).abs().max() == 0

def test_frozen_weights_the_optimizer_still_steps():
    learn = tiny_learner(); fit(learn, 1, 1e-2)
    for p in learn.model[0].parameters(): p.requires_grad_(False)
    fc = check_freezing(learn)
    assert {'frozen_stepped', 'frozen_state'} <= set(fc.warnings)
    assert fc.table.frozen_with_state.tolist()[:2] == [sum(p.numel() for p in learn.model[0][i].parameters()) for i in (0, 1)]
    w = conv0(learn).detach().clone(); fit(learn, 1, 1e-2)
    assert (conv0(learn) - w).norm() > 1e-3           # it moved although frozen
    learn.freeze_to(2)                                  # fastai's way clears the state, the grads stay
    assert set(check_freezing(learn).warnings) == {'frozen_stepped'}

def test_check_changes_nothing():
    learn = tiny_learner()                                   # no optimizer yet: the splitter is read, none is made
    before = [(p.requires_grad, p.grad) for p in learn.model.parameters()]
    check_freezing(learn)
    assert learn.opt is None and before == [(p.requires_grad, p.grad) for p in learn.model.parameters()]

def test_tracker_warns_once_per_trap():
    learn = tiny_learner(splitter=False)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        with learn.no_bar(), learn.no_logging(): learn.fine_tune(2, cbs=WeightChangeTracker())
    msgs = [str(w.message) for w in ws if 'WeightChangeTracker' in str(w.message)]
    assert len(msgs) == 1 and 'freeze() would freeze nothing' in msgs[0]

def test_tracker_silent_on_a_well_split_learner():
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        learn = tiny_learner()
        with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, cbs=WeightChangeTracker())
    assert not [w for w in ws if 'WeightChangeTracker' in str(w.message)]

def n_params(ps): return sum(p.numel() for p in ps)

def checked_before_and_after_opt(learn):
    "check_freezing with no optimizer, then after fastai's create_opt: the two must agree."
    assert learn.opt is None
    before = check_freezing(learn)
    learn.create_opt()
    after = check_freezing(learn)
    assert before.table.equals(after.table) and before.warnings == after.warnings, (before, after)
    return after

def test_default_learner_is_one_group_as_fastai_reads_it():
    learn = tiny_learner(splitter=False)                                   # fastai's default splitter: a flat list
    fc = checked_before_and_after_opt(learn)
    assert len(learn.opt.param_lists) == 1                                       # fastai made it one group
    assert fc.table.group.tolist() == [0] and fc.table.holds.tolist() == ['(the whole model)']
    assert fc.table.params.tolist() == [n_params(learn.model.parameters())]
    assert 'nothing_to_freeze' in fc.warnings and 'one parameter group' in fc.warnings['nothing_to_freeze'] and 'no_group' not in fc.warnings
    learn.freeze(); w = conv0(learn).detach().clone(); fit(learn, 1, 1e-2)
    assert (conv0(learn) - w).abs().max() > 0                                    # freeze() froze nothing, as warned

def test_vision_learner_groups_are_fastais():
    learn = vision_learner(tiny_dls(), resnet18, pretrained=False, n_out=2, loss_func=CrossEntropyLossFlat())
    fc = checked_before_and_after_opt(learn)
    split = [list(g) for g in model_meta[resnet18]['split'](learn.model)]
    assert len(split) == 3 and fc.table.params.tolist() == [n_params(g) for g in split] == [n_params(g) for g in learn.opt.param_lists]
    assert fc.table.holds.tolist() == ['0.0, 0.1, 0.4, 0.5', '0.6, 0.7', '1'] and fc.ok
    learn.freeze(); fc = check_freezing(learn)
    assert fc.table.trains.tolist() == ['norm layers only', 'norm layers only', 'yes'] and fc.ok and 'train_bn' in fc.notes
    body = learn.model[0]
    conv, bn, head = body[0].weight, body[1].weight, learn.model[1][-1].weight
    ws = [t.detach().clone() for t in (conv, bn, head)]; fit(learn, 1, 1e-2)
    assert (conv - ws[0]).abs().max() == 0 and (bn - ws[1]).abs().max() > 0 and (head - ws[2]).abs().max() > 0

def test_forgotten_params_counted_before_and_after_opt():
    learn = tiny_learner(splitter=lambda m: [params(m[0][0]), params(m[1])])
    fc = checked_before_and_after_opt(learn)
    assert fc.table.group.tolist() == [0, 1, 'none'] and 'no_group' in fc.warnings and 'splitter forgot them' in fc.warnings['no_group']
    assert fc.table.params.iloc[-1] == n_params(learn.model[0][1].parameters())
    assert f"{n_params(learn.model[0][1].parameters()):,} parameters" in fc.warnings['no_group']

def test_frozen_by_hand_then_default_learner():
    model = tiny_learner().model
    for p in model[0].parameters(): p.requires_grad_(False)
    learn = tiny_learner(splitter=False, model=model)                        # trainable_params: the head only
    fc = checked_before_and_after_opt(learn)
    assert fc.table.group.tolist() == [0, 'none'] and fc.table.holds.tolist() == ['1', '0']
    assert fc.table.params.tolist() == [n_params(model[1].parameters()), n_params(model[0].parameters())]
    assert set(fc.warnings) == {'nothing_to_freeze', 'no_group'}
    assert 'trainable_params' in fc.warnings['no_group'] and 'forgot' not in fc.warnings['no_group']
    assert [len(g) for g in learn.opt.param_lists] == [len(list(model[1].parameters()))]
    learn.unfreeze(); w = conv0(learn).detach().clone(); fit(learn, 1, 1e-2)
    assert (conv0(learn) - w).abs().max() == 0 and not any(p.requires_grad for p in model[0].parameters())   # unfreeze() never reached them

def test_everything_frozen_default_learner():
    model = tiny_learner().model.requires_grad_(False)
    learn = tiny_learner(splitter=False, model=model)
    fc = check_freezing(learn)
    assert fc.table.group.tolist() == ['none'] and fc.table.params.tolist() == [n_params(model.parameters())]
    assert set(fc.warnings) == {'no_group'} and 'IndexError' in fc.warnings['no_group']
    with pytest.raises(IndexError): fit(learn, 1, 1e-2)                          # as the warning says


def test_norm_layers_are_what_train_bn_keeps_training():
    "An affine InstanceNorm2d in a frozen body trains (fastai's train_bn keeps it training) and is reported as a norm layer; a GroupNorm is frozen with its group."
    blk = lambda norm: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), norm, nn.ReLU())
    model = nn.Sequential(nn.Sequential(blk(nn.InstanceNorm2d(8, affine=True)), nn.Sequential(nn.Conv2d(8, 3, 1), nn.GroupNorm(1, 3))),
                          nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)))
    learn = tiny_learner(model=model); learn.freeze()
    fc = check_freezing(learn)
    assert fc.table.trains.tolist() == ['norm layers only', 'no', 'yes'] and fc.ok and 'train_bn' in fc.notes
    inorm, gnorm = model[0][0][1].weight, model[0][1][1].weight
    ws = [t.detach().clone() for t in (inorm, gnorm)]; fit(learn, 1, 1e-2)
    assert (inorm - ws[0]).abs().max() > 0 and (gnorm - ws[1]).abs().max() == 0      # as the table says
