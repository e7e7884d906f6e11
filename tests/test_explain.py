"The words from RunHistory: explain and explain_diff state the run's facts, and the title words say how it did."
import re
import numpy as np, pytest
from finetune_lab.history import RunHistory, compare_runs
from finetune_lab.testing import fake_history
from finetune_lab.explain import explain, explain_diff, run_titles, group_change, error_words, error_short, config_title, run_label

def numbers(s): return re.findall(r'\d[\d,]*\.?\d*(?:e[+-]\d+)?', s)

def test_explain_says_no_steps_were_recorded():
    h = fake_history(interrupt_at=0)
    assert len(h.steps) == 0 and 'no training steps' in explain(h)

def test_explain_needs_a_history():
    with pytest.raises((ValueError, TypeError), match='needs a RunHistory'): explain('run.npz')

def test_loaded_history_explains_the_same(tmp_path):
    h = fake_history('gradual')
    assert explain(RunHistory.load(h.save(tmp_path/'run.npz'))) == explain(h)

def test_run_titles_without_differing_knobs_are_numbered():
    hs = [fake_history(), fake_history(head_depth=2, freeze_epochs=2, seed=1)]
    assert run_titles([hs[0], fake_history()]) == ['run 1', 'run 2']
    bare = [RunHistory(**{**vars(h), 'config': {}}) for h in hs]
    assert run_titles(bare) == ['run 1', 'run 2']

def test_explain_states_the_facts_of_fine_tune():
    h = fake_history(freeze_epochs=2, epochs=3)
    t = explain(h)
    for s in ['tracked 76 layers in 3 param groups', 'It trained frozen for 2 epochs, then unfrozen for 3 epochs.',
              'For 2 epochs (40 steps, fit 0) the run was frozen', 'in groups 0 and 1 (of 3) 36 of 72 layers had requires_grad=False',
              '36 of the 36 norm layers in the frozen groups kept training', 'Learner.train_bn is True (its default)',
              'group 2 2.0e-03', 'For 3 epochs (60 steps, fit 1) all 3 groups trained (unfrozen) and 76 of all 76 layers changed',
              f'error {h.final_errors().text()}']:
        assert s in t, s
    gc_ = group_change(h)
    assert f'was {gc_[2]:.3g} from its starting weights (mean ‖W − W₀‖ / ‖W₀‖ over its layers), {gc_[2]/gc_[0]:,.0f} times as far as group 0 ({gc_[0]:.3g})' in t
    w, n = group_change(h, ('conv', 'linear')), group_change(h, ('batchnorm', 'layernorm'))
    assert f'In group 0 the conv/linear weights ended {w[0]:.3g} from their start and the norm layers {n[0]:.3g}' in t   # apart

def test_explain_reads_in_paragraphs_one_per_phase():
    "What it tracked, each phase, what moved, and how it did: short paragraphs a student can scan, not one wall of text."
    t = explain(fake_history(freeze_epochs=2, epochs=3))
    paras = t.split('\n\n')
    assert len(paras) == 5 and all(p.strip() and '\n' not in p for p in paras), paras
    assert paras[0].startswith('This run (fine_tune) tracked') and 'It trained frozen for 2 epochs' in paras[0]
    assert paras[1].startswith('For 2 epochs (40 steps, fit 0) the run was frozen')
    assert paras[2].startswith('For 3 epochs (60 steps, fit 1) all 3 groups trained (unfrozen)')
    assert 'times as far as group 0' in paras[3] and 'wrong: ' in paras[4] and '95 % CI' in paras[4]
    hs = fake_history(strategy='head_only')
    last_phase = explain(hs).split('\n\n')[1]
    assert 'never fully unfroze' in last_phase   # said where the phase is described

@pytest.mark.parametrize('kw,facts,absent', [
    (dict(strategy='head_only'), ['It trained frozen for 2 epochs.', 'never fully unfroze: groups 0 and 1 were still frozen'], ['unfrozen for']),
    (dict(freeze_epochs=0), ['It trained unfrozen for 1 epoch.', 'No layer was ever frozen.'], ['requires_grad=False']),
    (dict(strategy='full', epochs=2), ['It trained unfrozen for 3 epochs.'], ['trained frozen', 'requires_grad=False']),
    (dict(strategy='gradual'), ['frozen for 1 epoch, then frozen_to 1 for 1 epoch, then unfrozen for 1 epoch',
                                'frozen_to 1: in group 0 (of 3) 16 of 32 layers'], []),
    (dict(epochs=2, interrupt_at=.6), ['before it was stopped', '(16 steps, fit 1, cut short)', 'interrupted after 36 recorded steps'], []),
    (dict(train_bn=False), ['None of the 36 norm layers in the frozen groups trained', '72 of 72 layers'], ['kept training']),
    (dict(n_groups=1), ['in 1 param group.', 'with a single param group freeze() has nothing to freeze'], ['head group']),
])
def test_explain_handles_every_shape(kw, facts, absent):
    t = explain(fake_history(**kw))
    for s in facts: assert s in t, s
    for s in absent: assert s not in t, s

def test_explain_numbers_come_from_the_history():
    "Scale the history's changes and LRs: every change figure and LR in the text scales with them."
    h = RunHistory(**{**vars(fake_history()), 'config': {}, 'planned_lr': []})   # no config, no plan: the LRs said are the recorded ones
    steps = h.steps.copy()
    for g in range(3): steps[f'lr_{g}'] *= 10
    h2 = RunHistory(**{**vars(h), 'steps': steps, 'change': h.change*4})
    t, t2 = explain(h), explain(h2)
    lr = lambda s: [float(x) for x in re.findall(r'group \d (\d\.\de[+-]\d\d)', s)]
    np.testing.assert_allclose(lr(t2), np.array(lr(t))*10, rtol=.06)
    pat = r'was ([\d.e+-]+) from its starting weights \(mean ‖W − W₀‖ / ‖W₀‖ over its layers\), [\d,.]+ times as far as group 0 \(([\d.e+-]+)\)'
    (c,), (c2,) = re.findall(pat, t), re.findall(pat, t2)
    np.testing.assert_allclose(np.array(c2, float), np.array(c, float)*4, rtol=.01)

def test_explain_diff_names_knobs_and_compares_numbers():
    a, b = fake_history(), fake_history(head_depth=2, freeze_epochs=2)
    t = explain_diff(a, b)
    ca, cb = group_change(a), group_change(b)
    (wa, na), (wb, nb_) = ((group_change(h, ('conv', 'linear'))[0], group_change(h, ('batchnorm', 'layernorm'))[0]) for h in (a, b))
    for s in ['A (head_depth=1, freeze_epochs=1) with B (head_depth=2, freeze_epochs=2)', "B's head has 6 layers with weights, A's 4",
              'A trained 1 epoch with part of the model frozen, B 2 epochs', 'With head_depth=2, freeze_epochs=2 (B) the head',
              f'ended {cb[-1]:.3g} from its starting weights', f'against {ca[-1]:.3g}', f'conv/linear weights ended {wb:.3g} from their start in B and {wa:.3g} in A',
              f'its norm layers {nb_:.3g} in B and {na:.3g} in A', f'Final error: A {error_short(a)}, B {error_short(b)}.']:
        assert s in t, s
    assert 'Run B was interrupted' in explain_diff(a, fake_history(interrupt_at=.5))
    assert 'nothing to compare' in explain_diff(a, fake_history(interrupt_at=0))

def test_words_say_whether_a_run_beat_the_larger_class():
    "'beats' only when the exact McNemar test on the same photos says so; a tie otherwise, equal numbers included."
    good, bad = fake_history(), fake_history('full')
    bad.valid_preds = bad.baseline_preds['majority'].copy()                 # answers exactly like the larger class
    assert 'has not shown that it learned' in explain(bad) and 'beats always answering' not in explain(bad)
    assert 'beats always answering the larger class (30.0 % (120/400) wrong): exact McNemar test on the same 400 photos' in explain(good)
    assert run_label(bad).endswith(', a tie with the larger class') and 'tie' not in run_label(good)

def test_equal_error_rates_are_ties_not_wins():
    "float32 1/3 against float64 1/3 (3 photos), and 0 % against 0 % (one class only): ties, never 'beats' or 'no better'."
    for err, base in [(np.float32(1/3), 1/3), (0., 0.)]:
        h = fake_history(n_valid=0)
        h.epochs.loc[h.epochs.index[-1], 'error_rate'] = err; h.baselines = dict(majority=base)
        t = explain(h)
        assert 'a tie within noise' in t and 'beats' not in t and 'no better' not in t, t

def test_a_small_validation_set_is_flagged():
    "With 20 photos one photo is 5 points, and the words say so."
    t = explain(fake_history(n_valid=20))
    assert 'With 20 validation photos one photo is 5 points of error rate and the interval is' in t
    assert 'two runs whose errors differ by less than half that may not differ at all' in t and 'a photo or two' not in t
    assert 'validation photos one photo is' not in explain(fake_history())   # 400 photos: the interval is narrow enough

def test_explain_diff_pairs_only_runs_on_the_same_photos():
    a, b = fake_history(), fake_history('head_only', seed=1)
    v = compare_runs(a, b)
    t = explain_diff(a, b)
    assert f"{v.a_only} wrong only for A and {v.b_only} only for B" in t
    assert ('A tie within noise' in t) == (v.which == 'tie')
    other = explain_diff(a, fake_history(n_valid=40))
    assert 'different photos, so no paired test' in other and 'McNemar' not in other

def test_repeats_show_mean_and_range_in_words_and_titles():
    h = fake_history(seeds=3)
    e = 100*h.repeats.error_rate
    rng = f"3 seeds: mean {e.mean():.1f} %, range {e.min():.1f}–{e.max():.1f} %"
    assert rng in error_words(h) and rng in config_title(h) and rng in run_label(h)

def test_explain_says_how_the_body_batchnorm_normalised():
    h = fake_history()
    assert 'keep_bn_stats' not in explain(h)                       # a history whose config does not say
    h.config = {**h.config, 'keep_bn_stats': True}
    assert "The resnet34 body's BatchNorm layers were kept in eval mode while training (keep_bn_stats=True" in explain(h)
    assert 'normalised every batch with their pretrained running statistics, as in validation, and never updated them' in explain(h)
    h.config = {**h.config, 'arch': 'efficientnet_lite0', 'keep_bn_stats': False}   # the run's own backbone, by name
    assert "The efficientnet_lite0 body's BatchNorm layers were in train mode while training (fastai's default, keep_bn_stats=False)" in explain(h)
    h.config = {**h.config, 'arch': 'resnet34', 'pretrained': False, 'keep_bn_stats': True}
    assert 'EfficientNet' not in explain(h) and 'pretrained running statistics' not in explain(h)

def test_a_run_stopped_before_the_peak_says_so_in_plain_words():
    "A run stopped in its first epoch, before the warm-up reached the top ('stopped before to the top' is gone)."
    t = explain(fake_history(interrupt_at=.2))
    assert 'the run was stopped before its schedule reached the top.' in t and 'before to the top' not in t, t
    assert 'no recorded step fell at the top of the one-cycle schedule' in explain(fake_history(steps_per_epoch=2))

def _on_photos(wrong, base_wrong, targets=(0, 1, 1)):
    "A history validated on `len(targets)` photos with its and the larger class's per-photo answers; its error stored as float32."
    h, y = fake_history(n_valid=len(targets)), np.array(targets)
    h.valid_targets, h.valid_preds = y, np.where(wrong, 1 - y, y)
    h.baseline_preds, h.baselines = dict(majority=np.where(base_wrong, 1 - y, y)), dict(majority=float(np.mean(base_wrong)))
    h.epochs.loc[h.epochs.index[-1], 'error_rate'] = np.float32(np.mean(wrong))
    return h

@pytest.mark.parametrize('wrong, base_wrong, targets', [
    ((1, 0, 0), (1, 0, 0), (0, 1, 1)),      # 1 of 3 against 1 of 3, the same photo
    ((0, 1, 0), (1, 0, 0), (0, 1, 1)),      # 1 of 3 against 1 of 3, different photos
    ((0, 0, 0), (0, 0, 0), (1, 1, 1))])     # one class only: 0 % against 0 %
def test_equal_counts_on_the_same_photos_are_ties(wrong, base_wrong, targets):
    h = _on_photos(wrong, base_wrong, targets)
    t = explain(h)
    assert 'a tie within noise' in t and 'beats' not in t and 'no better' not in t and 'worse' not in t, t
    assert run_label(h).endswith(', a tie with the larger class')
    other = _on_photos(base_wrong, wrong, targets)       # two runs with equal counts, compared with each other
    other.epochs.loc[other.epochs.index[-1], 'error_rate'] = float(np.mean(base_wrong))   # float64 this time
    d = explain_diff(h, other)
    assert 'A tie within noise' in d and 'A is better' not in d and 'B is better' not in d, d

def test_a_paired_win_says_it_is_one_seed_not_the_setting():
    "A McNemar win between one-seed runs is said to be about these two models, with how to see the seed's share; a tie is not."
    n, y = 40, np.arange(40) % 2
    a, b = (_on_photos(np.arange(n) < k, np.zeros(n, bool), y) for k in (2, 20))   # the same 40 photos: 2 and 20 wrong
    t = explain_diff(a, b)
    assert 'A is better' in t and "these two models' errors differ, not that the setting wins whatever the seed" in t, t
    assert 'run both with seeds=3' in t
    tie = explain_diff(a, a)
    assert 'A tie within noise' in tie and 'whatever the seed' not in tie, tie
