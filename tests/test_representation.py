"representation_change (issue 16): linear CKA per body block between the pretrained and the trained body."
import numpy as np, pandas as pd, pytest, torch
from finetune_lab.representation import linear_cka, representation_change, plot_representation, body_blocks
from finetune_lab.strategies import Config, run_learner
from finetune_lab.importance import KeepReference

TINY = Config(source='synthetic', n_images=32, size=64, arch='efficientnet_lite0', bs=16)

def trained(cfg):
    learn, h = run_learner(cfg, cbs=[kr := KeepReference()], progress=False)
    return learn, kr.reference_state

def test_cka_is_invariant_to_rotation_scale_and_shift_but_not_to_other_features():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 30, generator=g)
    q, _ = torch.linalg.qr(torch.randn(30, 30, generator=g))
    assert linear_cka(x, 5*x @ q - 2) == pytest.approx(1.0, abs=1e-12)
    y = torch.randn(40, 30, generator=g)
    assert linear_cka(x, y) < 0.7 and linear_cka(x, y) == pytest.approx(linear_cka(y, x))
    assert np.isnan(linear_cka(x, torch.ones(40, 3)))          # a constant output: no representation to compare

def test_a_body_that_cannot_move_represents_the_batch_exactly_as_before():
    learn, ref = trained(TINY.replace(strategy='head_only', train_bn=False, keep_bn_stats=True))
    df = representation_change(learn, ref)
    assert (df.weight_change == 0).all() and np.allclose(df.cka, 1.0, atol=1e-9)
    assert len(df) == len(body_blocks(learn)) == 11 and df.attrs['n_images'] == min(TINY.bs, len(learn.dls.valid_ds))

def test_training_the_body_changes_what_it_represents_and_leaves_the_learner_alone():
    learn, ref = trained(TINY.replace(base_lr=2e-2))
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.model.train()
    df = representation_change(learn, ref)
    assert (df.weight_change > 0).all() and df.cka.min() < 1 - 1e-4 and (df.cka <= 1 + 1e-9).all()
    assert learn.model.training and all(torch.equal(v, learn.model.state_dict()[k]) for k, v in before.items())
    fig = plot_representation(df)
    assert [b.get_height() for b in fig.axes[1].patches] == pytest.approx(list(1 - df.cka))

def test_bad_reference_says_what_to_pass():
    learn, ref = trained(TINY.replace(freeze_epochs=0))
    with pytest.raises(ValueError, match='reference_state='): representation_change(learn)
    with pytest.raises(ValueError, match='does not fit this model'): representation_change(learn, {'0.0.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match='lacks'): plot_representation(pd.DataFrame({'block': ['a']}))
