"representation_change: linear CKA per body block between the pretrained and the trained body, over the whole validation set, beside the shuffled-image floor."
import numpy as np, pandas as pd, pytest, torch
from finetune_lab.representation import linear_cka, shuffled_cka, pooled_outputs, representation_change, plot_representation, body_blocks
from finetune_lab.experiment import Config, run_learner
from finetune_lab.importance import KeepReference

TINY = Config(source='synthetic', n_images=32, n_valid=8, size=64, arch='efficientnet_lite0', bs=16)
MANY_VALID = Config(source='synthetic', n_images=16, n_valid=85, size=32, arch='efficientnet_lite0', bs=16)
STILL = dict(strategy='head_only', train_bn=False, keep_bn_stats=True)   # a body that cannot move

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
    assert shuffled_cka(x, 5*x @ q - 2) == pytest.approx(shuffled_cka(x, x), abs=1e-6) and shuffled_cka(x, x) < 0.7
    with pytest.raises(ValueError, match='same images'): shuffled_cka(x, x[:3])

def test_the_shuffled_floor_falls_as_the_images_grow():
    x = torch.randn(400, 50, generator=torch.Generator().manual_seed(0))
    f16, f80, f400 = (shuffled_cka(x[:n], x[:n]) for n in (16, 80, 400))
    assert f16 > 0.7 > f80 > f400 and f400 < 0.2

def test_a_body_that_cannot_move_represents_all_validation_images_exactly_as_before():
    learn, ref = trained(MANY_VALID.replace(**STILL))
    df = representation_change(learn, ref)
    n = len(learn.dls.valid_ds)
    assert n == 85 and df.attrs['n_images'] == n and (df.n_images == n).all()
    assert (df.weight_change == 0).all() and np.allclose(df.cka, 1.0, atol=1e-9)
    assert (df.cka_shuffled < df.cka - 0.05).all()
    assert len(df) == len(body_blocks(learn)) == 11

def test_cka_of_real_block_outputs_ignores_rotation_and_scale():
    learn, ref = trained(TINY.replace(**STILL))
    feats, = pooled_outputs([(learn.model, [b for _, b in body_blocks(learn)])], learn.dls.valid)
    assert all(len(f) == len(learn.dls.valid_ds) for f in feats)
    f = feats[-1]                                               # bn2: 1280 channels per image
    q, _ = torch.linalg.qr(torch.randn(f.shape[1], f.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert linear_cka(f, 0.01 * f.double() @ q) == pytest.approx(1.0, abs=1e-9)

def test_fewer_than_min_images_is_refused_with_what_to_do():
    learn, ref = trained(TINY.replace(**STILL))
    one_batch = [learn.dls.valid.one_batch()]
    n = len(one_batch[0][0])
    with pytest.raises(ValueError, match=f'got {n} images, fewer than min_images=80.*min_images={n} to accept'):
        representation_change(learn, ref, one_batch)
    df = representation_change(learn, ref, one_batch, min_images=n)
    assert df.attrs['n_images'] == n and np.allclose(df.cka, 1.0, atol=1e-9)

def test_training_the_body_changes_what_it_represents_and_leaves_the_learner_alone():
    learn, ref = trained(TINY.replace(base_lr=2e-2))
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.model.train()
    df = representation_change(learn, ref, min_images=2)
    assert (df.weight_change > 0).all() and df.cka.min() < 1 - 1e-4 and (df.cka <= 1 + 1e-9).all()
    assert learn.model.training and all(torch.equal(v, learn.model.state_dict()[k]) for k, v in before.items())
    fig = plot_representation(df)
    ax = fig.axes[1]
    assert [b.get_height() for b in ax.patches] == pytest.approx(list(1 - df.cka))
    shuffled, = [l for l in ax.get_lines() if l.get_gid() == 'shuffled']
    assert list(shuffled.get_ydata()) == pytest.approx(list(1 - df.cka_shuffled))
    n = len(learn.dls.valid_ds)
    assert f'n = {n}' in ax.get_ylabel() and f'{n} validation images' in ax.get_title()

def test_bad_reference_says_what_to_pass():
    learn, ref = trained(TINY.replace(freeze_epochs=0))
    with pytest.raises(ValueError, match='reference_state='): representation_change(learn)
    with pytest.raises(ValueError, match='does not fit this model'): representation_change(learn, {'0.0.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match='lacks'): plot_representation(pd.DataFrame({'block': ['a'], 'weight_change': [0.1], 'cka': [0.9]}))
