"layer_importance: put each param group back to its reference weights, measure the loss, restore the trained ones."
import numpy as np, pytest, torch
from torch import nn
from finetune_lab.testing import fake_history
from finetune_lab.plots import fig_to_png, plot_importance
from finetune_lab.importance import layer_importance, KeepReference
from finetune_lab.models import tiny_learner

def is_png(b): return isinstance(b, bytes) and b[:8] == b'\x89PNG\r\n\x1a\n' and len(b) > 2_000

def test_layer_importance_resets_each_group_then_restores():
    learn, ref = tiny_learner(n=64, bs=16), KeepReference()
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-2, cbs=ref)
    trained = {k: v.clone() for k,v in learn.model.state_dict().items()}
    learn.add_cb(ref)   # found on the learner without passing reference_state
    with learn.no_bar(): df = layer_importance(learn, fake_history(steps_per_epoch=2))
    assert all(torch.equal(trained[k], v) for k,v in learn.model.state_dict().items())
    assert df.group.tolist() == [0, 1, 2] and list(df.columns[:4]) == ['group', 'n_params', 'valid_loss', 'error_rate']
    np.testing.assert_allclose(df.valid_loss - df.delta_loss, df.attrs['valid_loss'], rtol=1e-6)
    # putting group 2 (the head) back by hand gives the same loss
    learn.model[1].load_state_dict({k[2:]: v for k,v in ref.reference_state.items() if k.startswith('1.')})
    with learn.no_bar(): assert learn.validate()[0] == pytest.approx(df.valid_loss[2], rel=1e-5)
    fig = plot_importance(df)
    assert [a.get_xlabel() for a in fig.axes] == ['param group (input → head)']*2 and is_png(fig_to_png(fig, dpi=40))

def test_layer_importance_refuses_a_foreign_reference():
    learn = tiny_learner()
    with pytest.raises(ValueError, match='reference_state='): layer_importance(learn)
    other = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)), nn.Linear(4, 2)).state_dict()
    with pytest.raises(ValueError, match='lacks'): layer_importance(learn, reference_state=other)
    with pytest.raises(ValueError, match='2 param groups'):
        layer_importance(learn, fake_history(n_groups=2), reference_state=learn.model.state_dict())
