"The Lab panel driven from plain Python: stop mid-run, run again, disk cache in a fresh panel, compare, errors, seeds, runs of your own."
import time, urllib.error
import pytest
from fastai.callback.core import Callback
from finetune_lab.lab import Lab, run_file, planned_epochs
from finetune_lab.models import weights_available
from finetune_lab.explain import explain

TINY = dict(source='synthetic', n_images=32, n_valid=16, size=64, arch='efficientnet_lite0', epochs=1, freeze_epochs=1)   # 2 batches an epoch
PNG = b'\x89PNG\r\n\x1a\n'

def wait_for(cond, timeout=300, what='condition'):
    t = time.perf_counter()
    while not cond():
        if time.perf_counter() - t > timeout: raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)

@pytest.fixture(scope='module')
def run_dir(tmp_path_factory): return tmp_path_factory.mktemp('runs')

@pytest.fixture(scope='module')
def lab(run_dir):
    "A panel that has been stopped mid-run, then run to the end with a tiny setup."
    lab = Lab(run_dir=run_dir, **{**TINY, 'epochs': 5})
    lab.stopped_cfg = lab.config()
    lab.run_button.click()
    wait_for(lambda: lab.progress.value >= 1, what='the first training batch')
    lab.stop_button.click()
    assert lab.wait(300), "the run did not end after Stop"
    lab.after_stop = dict(status=lab.status.value, run_disabled=lab.run_button.disabled, stop_disabled=lab.stop_button.disabled,
                          progress=(lab.progress.value, lab.progress.max))
    lab.controls['epochs'].value = 1  # TINY: a different setup from the stopped one
    lab.run_button.click()
    assert lab.wait(300)
    lab.after_run_status = lab.status.value
    return lab

def test_stop_keeps_partial_run_uncached(lab, run_dir):
    h = lab.runs[0]
    assert h.interrupted and 'interrupted' in lab.runs_list.options[0][0]
    n_planned = planned_epochs(lab.stopped_cfg)*2  # 2 batches per epoch: 32 training images, bs 16
    assert 1 <= len(h.steps) < n_planned, f"{len(h.steps)} steps recorded, {n_planned} planned: Stop did not end it early"
    done, total = lab.after_stop['progress']
    assert done < total
    assert 'Stopped' in lab.after_stop['status'] and 'Traceback' not in lab.after_stop['status']
    assert (lab.after_stop['run_disabled'], lab.after_stop['stop_disabled']) == (False, True)
    assert lab.cached(lab.stopped_cfg) is None and not run_file(run_dir, lab.stopped_cfg).exists()

def test_run_after_stop_finishes_and_is_cached(lab, run_dir):
    assert len(lab.runs) == 2 and lab.n_trained == 2
    h = lab.runs[1]
    assert not h.interrupted and h.config['epochs'] == 1 and len(h.epochs) == 2
    assert bytes(lab.report.value).startswith(PNG) and 'This run (fine_tune)' in lab.explanation.value
    assert lab.explanation.value.count('<p ') == len(explain(lab._shown).split('\n\n')) > 1   # a paragraph each
    assert run_file(run_dir, lab.config()).exists()

def test_stopped_setup_trains_again(lab):
    "An interrupted run is not a cached result: asking for that setup again would train."
    assert 'Run trains' in lab._check(lab.stopped_cfg)[0]

def test_disk_cache_in_fresh_lab(lab, run_dir):
    fresh = Lab(run_dir=run_dir, **TINY)
    assert 'run before' in fresh.status.value  # known before Run is pressed
    fresh.run_button.click()
    assert not fresh.running and fresh.n_trained == 0, "a saved run was trained again"   # shown at once, no worker started
    assert len(fresh.runs) == 1 and fresh.runs[0].equals(lab.runs[1])
    assert bytes(fresh.report.value).startswith(PNG) and 'cache' in fresh.status.value

def test_fresh_lab_shows_the_saved_report_without_drawing(lab, run_dir, monkeypatch):
    "The report drawn when the run finished is kept next to its history: a new session shows it without matplotlib."
    import finetune_lab.lab as L
    pngs = sorted(run_dir.glob('*.report-*.png'))
    assert len(pngs) == 1 and pngs[0].read_bytes().startswith(PNG)   # the finished run's (not the stopped one's)
    def no_drawing(h): raise AssertionError('plot_report was called')
    monkeypatch.setattr(L, 'plot_report', no_drawing)
    fresh = Lab(run_dir=run_dir, **TINY)
    fresh.run_button.click()
    assert fresh.error is None and bytes(fresh.report.value) == pngs[0].read_bytes()
    monkeypatch.undo()
    whole = pngs[0].read_bytes()
    for damaged in (b'not a png', whole[:len(whole)//2]):   # not a PNG, or cut short: drawn again, and saved again
        pngs[0].write_bytes(damaged)
        again = Lab(run_dir=run_dir, **TINY)
        again.run_button.click()
        assert bytes(again.report.value).startswith(PNG) and pngs[0].read_bytes() == bytes(again.report.value) != damaged
        assert bytes(again.report.value).endswith(b'IEND\xaeB`\x82')

def test_no_disk_cache_without_run_dir(lab):
    assert Lab(run_dir=None, **TINY).cached(lab.config()) is None

def test_compare_two_runs(lab):
    lab.runs_list.value = (0,)
    lab.compare_button.click()
    assert 'Pick exactly two' in lab.status.value and lab.compare_image.value == b''
    lab.runs_list.value = (0, 1)
    lab.compare_button.click()
    shared = lab.compare_image.value
    assert bytes(shared).startswith(PNG) and 'Comparing A' in lab.diff.value and 'interrupted' in lab.diff.value
    lab.view['scale'].value = 'per run'  # view only: redraws, never trains
    assert bytes(lab.compare_image.value).startswith(PNG) and lab.compare_image.value != shared and lab.n_trained == 2

def test_show_picked_run(lab):
    lab.runs_list.value = (0,)
    lab.show_button.click()
    assert 'interrupted' in lab.explanation.value and 'Showing run 1' in lab.status.value

def test_view_changes_redraw_the_shown_run_exactly(lab):
    "Heatmap view: a new colour map re-colours the drawn heatmap (HeatmapPNG) and gives the pixels a fresh drawing gives."
    import io, numpy as np
    from PIL import Image
    from finetune_lab.plots import plot_heatmap, fig_to_png
    from finetune_lab.explain import config_title
    pixels = lambda png: np.asarray(Image.open(io.BytesIO(bytes(png))).convert('RGBA'))
    lab.runs_list.value = (1,); lab.show_button.click()
    h, n = lab.runs[1], lab.n_trained
    lab.view['figure'].value = 'heatmap'
    for cmap in ('magma', 'cividis', 'viridis'):
        lab.view['cmap'].value = cmap
        want = fig_to_png(plot_heatmap(h, cmap=cmap, group_by=lab.view['group_by'].value, title=config_title(h)))
        assert (pixels(lab.report.value) == pixels(want)).all(), cmap
    assert len([k for k in lab._heatmaps if k[:2] == (id(h), 'heatmap')]) == 1 and lab.n_trained == n   # drawn once, re-coloured twice
    lab.view['group_by'].value = 'layer'                                                     # new rows: a new drawing
    assert (pixels(lab.report.value) == pixels(fig_to_png(plot_heatmap(h, cmap='viridis', group_by='layer', title=config_title(h))))).all()
    lab.view['figure'].value, lab.view['group_by'].value = 'report', 'block'

def test_every_view_menu_acts_on_the_full_report(lab):
    "With 'full report' shown, 'heatmap rows' and 'heatmap colours' change it too (nothing retrains)."
    import io, numpy as np
    from PIL import Image
    from finetune_lab.plots import plot_report, fig_to_png
    from finetune_lab.lab import REPORT_W, DEFAULT_VIEW
    pixels = lambda png: np.asarray(Image.open(io.BytesIO(bytes(png))).convert('RGBA'))
    lab.runs_list.value = (1,); lab.show_button.click()
    h, n, default = lab.runs[1], lab.n_trained, lab.report.value
    assert lab.view['figure'].value == 'report'
    lab.view['group_by'].value = 'layer'
    by_layer = lab.report.value
    assert (pixels(by_layer) == pixels(fig_to_png(plot_report(h, width=REPORT_W, group_by='layer')))).all()
    lab.view['cmap'].value = 'magma'
    assert (pixels(lab.report.value) == pixels(fig_to_png(plot_report(h, width=REPORT_W, group_by='layer', cmap='magma')))).all()
    for k, v in DEFAULT_VIEW.items(): lab.view[k].value = v
    assert lab.report.value == default and lab.n_trained == n

def test_finished_runs_are_told_apart_and_the_panel_names_data_and_backbone(lab):
    "Labels name what differs from the defaults, in full; every setting on hover and on pick."
    labels = [l for l, _ in lab.runs_list.options]
    assert labels[0].startswith('1. fine_tune') and labels[0].endswith('(interrupted)')   # the panel's default epochs=5: not named
    assert labels[1].startswith('2. fine_tune, 1 frozen + 1 epoch: error ')               # epochs=1 differs: named
    assert lab.runs_list.layout.width == '98%'                 # as wide as the panel: nothing cut off
    tip = lab.runs_list.tooltip.split('\n')
    assert len(tip) == 2 and 'epochs=5' in tip[0] and 'epochs=1' in tip[1] and all('n_images=32' in t and 'source=synthetic' in t for t in tip)
    lab.runs_list.value = (0, 1)
    assert 'epochs=5' in lab.run_details.value and 'epochs=1,' in lab.run_details.value
    more = Lab(run_dir=None, **{**TINY, 'n_images': 48})
    r = lab.runs[1]
    assert '32 images' in more._label_of(r) and '48' not in more._label_of(r)   # 32 differs from this panel's 48
    assert 'drawn' in lab.data_line.value and 'efficientnet_lite0' in lab.data_line.value and '32 photos to train on and 16 held out to validate on at 64 px' in lab.data_line.value

def test_stop_while_preparing_adds_no_empty_run():
    "Stop before the first training step cancels cleanly: no 0-step run, no empty figure, a clear label."
    lab = Lab(run_dir=None, **TINY)
    lab.run_button.click(); lab.stop_button.click()     # at once: the worker is still building the data and the model
    assert lab.wait(300)
    assert lab.runs == [] and lab.runs_list.options == () and lab.report.value == b'' and lab.report.layout.display == 'none'
    assert 'Stopped before the first training step' in lab.status.value and 'no run was added' in lab.status.value
    assert 'preparing' not in lab.progress_label.value and not lab.run_button.disabled and lab.stop_button.disabled

def test_css_classes(lab):
    for w, cls in ((lab.controls['head_depth'], 'fl-head-depth'), (lab.run_button, 'fl-run'), (lab.stop_button, 'fl-stop'),
                   (lab.report, 'fl-report'), (lab.head_table, 'fl-head-table'), (lab.status, 'fl-status')):
        assert cls in w._dom_classes

def test_bad_default_fails_at_construction():
    with pytest.raises(ValueError, match='head_depth'): Lab(run_dir=None, head_depth=9)

@pytest.mark.skipif(weights_available('resnet18'), reason="resnet18's weights are cached here, so nothing is missing")
def test_missing_weights_message(monkeypatch):
    "Offline (simulated: every download fails), a backbone without cached weights ends in the WeightsUnavailableError message."
    import torchvision.models._api as api
    def offline(*a, **k): raise urllib.error.URLError('no network (simulated)')
    monkeypatch.setattr(api, 'load_state_dict_from_url', offline)
    lab = Lab(run_dir=None, **{**TINY, 'arch': 'resnet18'})
    assert 'fl-warn' in lab.status.value and 'not on this machine' in lab.status.value
    lab.run_button.click(); assert lab.wait(300)
    assert 'WeightsUnavailableError' in lab.status.value and 'efficientnet_lite0' in lab.status.value
    assert not lab.run_button.disabled

def test_keep_bn_stats_checkbox_follows_auto_and_the_panel_names_its_images():
    "keep_bn_stats='auto': ticked for efficientnet_lite0, cleared for a resnet; the run's Config takes the box's value."
    lab = Lab(run_dir=None, **{**TINY, 'source': 'bundled'})
    box = lab.controls['keep_bn_stats']
    assert box.value is True and lab.config().keep_bn_stats is True
    assert 'bundled mini Oxford-IIIT Pet set' in lab.data_line.value and 'keep_bn_stats' in lab.data_line.value
    lab.controls['arch'].value = 'resnet18'
    assert box.value is False and lab.config().keep_bn_stats is False and 'keep_bn_stats' not in lab.data_line.value
    box.value = True
    assert lab.config().keep_bn_stats is True
    assert Lab(run_dir=None, **{**TINY, 'keep_bn_stats': False}).controls['keep_bn_stats'].value is False

def test_head_type_controls_change_the_preview_and_the_run_config():
    "Head width, dropout and pooling are on the panel; the head preview and the Config follow them."
    lab = Lab(run_dir=None, **TINY)
    c = lab.controls
    assert c['head_depth'].max == 5
    before = lab.head_table.value
    c['head_width'].value, c['ps'].value, c['concat_pool'].value = 128, 0.2, False
    t = lab.head_table.value
    assert t != before and 'average pooling' in t and 'Linear 1280 → 128' in t and 'p=0.2' in t
    cfg = lab.config()
    assert (cfg.head_width, cfg.ps, cfg.concat_pool) == (128, 0.2, False)
    assert 'Run trains 2 epochs' in lab.status.value
    c['freeze_epochs'].value = 0
    assert 'Run trains 1 epoch (' in lab.status.value      # not "1 epochs"


# --- noise made visible, seeds, a stale label, runs of your own -------------------------------------------------

def test_small_validation_set_is_flagged_near_run_and_in_the_result(lab):
    "16 validation photos: the line under Run and the finished run's status say how coarse the error is; 400 photos say nothing."
    from finetune_lab.lab import noise_words
    assert 'fl-noise' in lab.noise_line._dom_classes
    assert '16 validation photos: one photo is 6.25 points of error rate' in lab.noise_line.value and 'can be noise' in lab.noise_line.value
    ec = lab.runs[1].final_errors()
    assert ec is not None and ec.n == 16                                      # the run validated on the 16 photos it was given
    assert f"error {ec.short()}" in lab.after_run_status and noise_words(16, ec.ci) in lab.after_run_status.replace('&#x27;', "'")
    lab.controls['n_valid'].value = 400
    assert lab.noise_line.value == ''
    lab.controls['n_valid'].value = 16
    assert '16 validation photos' in lab.noise_line.value

def test_error_counts_in_the_finished_runs_list(lab):
    labels = [l for l, _ in lab.runs_list.options]
    ec = lab.runs[1].final_errors()
    assert f"error {ec.short()}" in labels[1] and f"/{ec.n})" in labels[1]    # '12.5 % (2/16)': the count, not only the rate

class StopAtSecondSeed(Callback):
    "Press the panel's Stop as the second seed's learner starts fitting (a new Learner per seed)."
    def __init__(self, lab): self.lab, self.learners = lab, []
    def before_fit(self):
        if not any(l is self.learn for l in self.learners): self.learners.append(self.learn)
        if len(self.learners) == 2: self.lab.stop_button.click()

@pytest.mark.slow
def test_seeds_run_one_after_another_and_show_mean_and_range(run_dir):
    lab = Lab(run_dir=run_dir, **{**TINY, 'seeds': 2})
    assert lab.controls['seeds'].value == 2 and 'seeds 42 to 43' in lab.status.value and '2 times as long' in lab.status.value
    lab.run_button.click()
    labels = []
    wait_for(lambda: labels.append(lab.progress_label.value) or 'seed 2/2' in lab.progress_label.value or not lab.running,
             what='the second seed')
    assert lab.wait(300)
    h = lab.runs[0]
    assert list(h.repeats.seed) == [42, 43] and (h.repeats.n == 16).all()
    assert any('seed 2/2' in l for l in labels), labels[-5:]
    assert lab.progress.value == lab.progress.max == 2*planned_epochs(lab.config())*2   # one bar for both seeds
    assert '2 seeds: mean' in lab.runs_list.options[0][0] and '2 seeds: mean' in lab.status.value and 'Finished' in lab.status.value
    assert 'Over 2 seeds' in lab.explanation.value
    assert run_file(run_dir, lab.config()).exists()
    one = Lab(run_dir=run_dir, **TINY)       # the one-seed run of the same setup (from the cache when an earlier test ran it)
    one.run_button.click()
    assert one.wait(300) and len(one.runs) == 1
    one.add(h, name='two seeds')
    one.compare(0, 1)
    assert 'B: 2 seeds: mean' in one.diff.value

@pytest.mark.slow
def test_stop_during_a_later_seed_keeps_the_finished_seeds_uncached(run_dir):
    lab = Lab(run_dir=run_dir, **{**TINY, 'seeds': 2, 'epochs': 2})
    lab.cbs = [StopAtSecondSeed(lab)]
    lab.run_button.click(); assert lab.wait(300)
    h = lab.runs[0]
    assert len(h.repeats) == 1 and not h.interrupted
    assert 'Stopped during seed 2 of 2' in lab.status.value and 'not cached' in lab.status.value
    assert lab.cached(lab.config()) is None and not run_file(run_dir, lab.config()).exists()

def test_showing_another_run_clears_a_stale_stop_label():
    "'stopped before training began' does not stay beside a run shown later."
    from finetune_lab.testing import fake_history
    lab = Lab(run_dir=None, **TINY)
    lab.run_button.click(); lab.stop_button.click()
    assert lab.wait(300) and lab.progress_label.value == 'stopped before training began'
    lab.add(fake_history(n_valid=16))
    assert lab.progress_label.value == '' and lab.progress.value == 0
    lab.progress_label.value = 'stopped before training began'    # as a later Stop would leave it
    lab.runs_list.value = (0,); lab.show_button.click()
    assert lab.progress_label.value == '' and 'Showing run 1' in lab.status.value

def test_a_run_of_your_own_joins_the_list_and_compares(lab):
    "lab.add(learner_history(learn), name=...) on a Learner trained outside the panel."
    from finetune_lab.experiment import Config, get_dls, learner_history
    from finetune_lab.models import build_learner
    from finetune_lab.tracker import WeightChangeTracker
    learn = build_learner(get_dls(Config(**TINY)), 'efficientnet_lite0', head_depth=2, keep_bn_stats=True)
    learn.fine_tune(1, freeze_epochs=1, cbs=WeightChangeTracker())
    mine = learner_history(learn)
    n = len(lab.runs)
    i = lab.add(mine, name='my head_depth=2')
    assert i == n and lab.runs[i] is mine and lab._shown is mine and bytes(lab.report.value).startswith(PNG)
    label = lab.runs_list.options[i][0]
    assert label.startswith(f"{i+1}. my head_depth=2") and f"error {mine.final_errors().short()}" in label
    assert 'This run' in lab.explanation.value and "Added run" in lab.status.value
    lab.compare(1, i)
    assert bytes(lab.compare_image.value).startswith(PNG) and 'Comparing A' in lab.diff.value
    with pytest.raises(TypeError, match='Lab.add needs a RunHistory'): lab.add(learn)

def test_head_table_explains_the_halved_dropout():
    lab = Lab(run_dir=None, **TINY)
    lab.controls['ps'].value = 0.3
    t = lab.head_table.value
    assert 'p=0.15' in t and 'halves it on the hidden layers (p=0.15)' in t and 'full p=0.3' in t

def test_pets_offline_is_warned_before_run_and_fails_in_one_line(monkeypatch):
    "images=pets without the download warns before Run; offline, Run ends in one clear line."
    import finetune_lab.lab as L, finetune_lab.data as D
    monkeypatch.setattr(L, '_pets_downloaded', lambda: False)
    def offline(*a, **k): raise urllib.error.URLError(urllib.error.URLError('[Errno -3] Temporary failure in name resolution'))
    monkeypatch.setattr(D, 'untar_data', offline)
    lab = Lab(run_dir=None, **{**TINY, 'source': 'pets', 'n_valid': 40})
    assert 'fl-warn' in lab.status.value and 'fails offline' in lab.status.value and "'bundled'" in lab.status.value.replace('&#x27;', "'")
    lab.run_button.click(); assert lab.wait(300)
    s = lab.status.value.replace('&#x27;', "'")
    assert 'fl-error' in s and 'a download failed (offline?)' in s and 'urlopen error' not in s and 'Traceback' not in s
