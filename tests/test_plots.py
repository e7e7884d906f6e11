"Figures and words from RunHistory: every strategy's shape renders, phases and frozen cells are drawn where they happened."
import gc, re, threading, weakref
import numpy as np, pandas as pd, pytest
from matplotlib.figure import Figure
from finetune_lab.history import RunHistory
from finetune_lab.testing import fake_history
from finetune_lab.plots import (fig_to_png, plot_heatmap, plot_phase_bars, plot_lrs, plot_losses, plot_update_ratio,
    plot_compare, plot_report, plot_importance, layer_blocks, color_limits, row_labels, text_width, _step_edges)
from finetune_lab.explain import config_title

def every_kth(h, k):
    "`h` as a tracker with `every=k` would record it: every k-th step only."
    rows = np.arange(0, len(h.steps), k)
    return RunHistory(layers=h.layers, steps=h.steps.iloc[rows], change=h.change[rows], update=h.update[rows],
                      trainable=h.trainable[rows], bn_stats=h.bn_stats[rows], epochs=h.epochs, config=h.config)

SHAPES = {
    'fine_tune': lambda: fake_history(),
    'head_only': lambda: fake_history('head_only'),
    'full': lambda: fake_history('full'),
    'gradual': lambda: fake_history('gradual'),
    'no_discriminative': lambda: fake_history('no_discriminative'),
    'freeze_epochs=0': lambda: fake_history(freeze_epochs=0),
    'interrupted': lambda: fake_history(epochs=2, interrupt_at=.6),
    'one_group': lambda: fake_history(n_groups=1),
    'two_groups': lambda: fake_history(n_groups=2, head_depth=0),
    'every_3rd_step': lambda: every_kth(fake_history(epochs=2), 3),
    'resnet50_sized': lambda: fake_history(blocks=(3,8,16,6)),
}
STEP_PLOTS = [plot_heatmap, plot_lrs, plot_losses, plot_update_ratio]

@pytest.fixture(params=list(SHAPES), scope='module')
def hist(request): return SHAPES[request.param]()

def is_png(b): return isinstance(b, bytes) and b[:8] == b'\x89PNG\r\n\x1a\n' and len(b) > 2_000

def data_axes(fig):
    "The figure's plotting axes (not colour bars, not twin axes without their own x label)."
    return [a for a in fig.axes if a.get_label() != '<colorbar>' and a.get_xlabel()]

def boundary_xs(ax): return sorted(l.get_xdata()[0] for l in ax.lines if l.get_gid() == 'phase_boundary')

def expected_boundaries(h): return [float(h.steps.step.iloc[a]) for _,_,a,_ in h.phase_spans()[1:]]

def hatched_cells(ax, h, shape):
    "Which [row, step] cells the heatmap's 'frozen' rectangles cover."
    (patch,) = [p for p in ax.patches if p.get_gid() == 'frozen']
    x, out = _step_edges(h), np.zeros(shape, bool)
    for poly in patch.get_path().to_polygons(closed_only=False):
        (x0, y0), (x1, y1) = poly.min(0), poly.max(0)
        out[int(round(y0+.5)):int(round(y1+.5)), np.searchsorted(x, x0):np.searchsorted(x, x1)] = True
    return out

# ---------------------------------------------------------------- every figure, every shape
def check_figure(fig):
    assert isinstance(fig, Figure)
    axs = data_axes(fig)
    assert axs, "no labelled axes"
    for a in axs: assert a.get_xlabel() and a.get_ylabel() and (a.get_title() or fig.get_suptitle())
    assert is_png(fig_to_png(fig, dpi=40))

@pytest.mark.parametrize('plot', STEP_PLOTS + [plot_phase_bars], ids=lambda f: f.__name__)
def test_every_figure_renders_with_labelled_axes(hist, plot): check_figure(plot(hist))

@pytest.mark.parametrize('shape', ['fine_tune', 'gradual', 'interrupted', 'one_group'])
def test_report_renders(shape):
    fig = plot_report(SHAPES[shape]())
    check_figure(fig)
    assert len(data_axes(fig)) == 4

@pytest.mark.parametrize('plot', STEP_PLOTS, ids=lambda f: f.__name__)
def test_phase_lines_sit_at_the_recorded_phase_starts(hist, plot):
    ax = data_axes(plot(hist))[0]
    assert boundary_xs(ax) == expected_boundaries(hist)
    names = [t.get_text().split('\n')[0].split(' (fit')[0] for t in ax.texts if 'epoch' in t.get_text()]
    assert names == [p for p,*_ in hist.phase_spans()]

def test_frozen_cells_are_hatched_exactly(hist):
    ax = plot_heatmap(hist).axes[0]
    assert (hatched_cells(ax, hist, hist.trainable.T.shape) == ~hist.trainable.T).all()
    # and the image underneath keeps the frozen layers' true value: exactly no change
    assert (hist.change[~hist.trainable] == 0).all()

def test_block_rows_hatched_when_most_of_the_block_is_frozen():
    h = fake_history()
    ax = plot_heatmap(h, group_by='block').axes[0]
    blocks, w = layer_blocks(h.layers), h.layers.n_params.to_numpy()
    want = np.array([(~h.trainable[:, a:b] * w[a:b]).sum(1) > w[a:b].sum()/2 for _,a,b in blocks])
    assert (hatched_cells(ax, h, want.shape) == want).all()
    assert want[:-1, 0].all() and not want[-1].any()   # body blocks frozen at first (only BN trains), head never

def test_image_covers_recorded_steps_and_all_layers(hist):
    im, bar = plot_heatmap(hist).axes[0].images   # the heatmap, then its colour bar's gradient
    assert bar.get_gid() == 'colorbar'
    x = _step_edges(hist)
    assert im.get_array().shape == (len(hist.layers), len(hist.steps))
    assert im.get_extent()[:2] == [x[0], x[-1]]

def test_group_boundaries_and_labels():
    h = fake_history()
    ax = plot_heatmap(h).axes[0]
    (lines,) = [c for c in ax.collections if c.get_gid() == 'group_boundary']
    ys = sorted(seg[0][1] for seg in lines.get_segments())
    starts = [int(np.flatnonzero(h.layers.group == g)[0]) for g in (1, 2)]
    assert ys == [s - .5 for s in starts]
    assert [t.get_text() for t in ax.texts if t.get_gid() == 'group_label'] == ['group 0\n(body)', 'group 1\n(body)', 'group 2\n(head)']
    # 76 rows: one label per block, not one per layer, each at the middle of its block's rows
    labels = [t for t in ax.texts if t.get_gid() == 'row_label']
    blocks = layer_blocks(h.layers)
    assert row_labels(ax) == [k for k,_,_ in blocks] and len(blocks) < len(h.layers)
    assert sorted(t.get_position()[1] for t in labels) == [(a+b-1)/2 for _,a,b in blocks]
    few = fake_history(blocks=(1,1,1,1))
    assert row_labels(plot_heatmap(few).axes[0]) == list(few.layers.name)

def test_no_steps_draws_a_message_not_a_crash():
    h = fake_history(interrupt_at=0)
    assert len(h.steps) == 0
    for plot in STEP_PLOTS + [plot_phase_bars, plot_report]:
        fig = plot(h)
        assert any('no training steps' in t.get_text() for a in fig.axes for t in a.texts)
        assert is_png(fig_to_png(fig, dpi=40))

def test_a_cut_short_phase_says_so():
    ax = plot_heatmap(fake_history(epochs=2, interrupt_at=.6)).axes[0]
    assert [t.get_text() for t in ax.texts if 'epoch' in t.get_text()] == ['frozen\n1 epoch', 'unfrozen\n1 epoch, cut short']
    ax = plot_lrs(fake_history(n_groups=1)).axes[0]   # the same phase twice: named with its fit
    assert [t.get_text() for t in ax.texts] == ['unfrozen (fit 0)\n1 epoch', 'unfrozen (fit 1)\n1 epoch']

# ---------------------------------------------------------------- individual figures
def test_phase_bars_count_and_mark_layers_like_summary(hist):
    ax = plot_phase_bars(hist).axes[0]
    s, n = hist.summary(), len(hist.layers)
    counts = [t.get_text().split('\n')[1] for t in ax.texts]
    assert counts == [f"{s[(s.fit == f) & (s.phase == p)].changed.sum()}/{n} changed" for p,f,*_ in hist.phase_spans()]
    for i,(p,f,a,b) in enumerate(hist.phase_spans()):
        still = [r for r in ax.patches if r.get_gid() == f'still_{i}']
        n_still = sum(len(p.get_path().to_polygons(closed_only=False)) for p in still)
        assert n_still == int((~(hist.update[a:b] > 0).any(0)).sum())

def test_lr_lines_are_the_recorded_lrs():
    h = fake_history('no_discriminative')
    ax = plot_lrs(h).axes[0]
    assert ax.get_yscale() == 'log'
    for g in range(3):
        (l,) = [l for l in ax.lines if l.get_gid() == f'lr_{g}']
        np.testing.assert_allclose(l.get_ydata(), h.steps[f'lr_{g}'])

def test_losses_put_epoch_metrics_at_epoch_ends():
    h = fake_history(epochs=2)
    fig = plot_losses(h)
    (v,) = [l for a in fig.axes for l in a.lines if l.get_gid() == 'valid_loss']
    (e,) = [l for a in fig.axes for l in a.lines if l.get_gid() == 'error_rate']
    np.testing.assert_allclose(v.get_xdata(), [20, 40, 60])
    np.testing.assert_allclose(e.get_ydata(), h.epochs.error_rate)

def test_update_ratio_has_the_guide_line():
    ax = plot_update_ratio(fake_history()).axes[0]
    (g,) = [l for l in ax.lines if l.get_gid() == 'guide']
    assert list(g.get_ydata()) == [-3, -3]

def test_compare_shares_one_colour_scale_and_names_the_knobs():
    hs = [fake_history(), fake_history(head_depth=2, freeze_epochs=2, seed=1), fake_history('full', seed=2)]
    fig = plot_compare(hs)
    norms = {(a.images[0].norm.vmin, a.images[0].norm.vmax) for a in fig.axes if a.images}
    assert norms == {color_limits(hs)}
    titles = [a.get_title().replace('\n', ' ') for a in fig.axes if a.images]   # long titles wrap at ', ' or ': '
    assert fig.get_size_inches()[0] <= 13.01                                     # max_width: narrower panels, not smaller text
    knobs = ['head_depth=1, strategy=fine_tune, freeze_epochs=1', 'head_depth=2, strategy=fine_tune, freeze_epochs=2',
             'head_depth=1, strategy=full, freeze_epochs=1']
    assert titles == [f"{k}: error {h.final_errors().short()} (larger class: 30.0 %)" for k, h in zip(knobs, hs)]   # error with its count
    assert [a.get_title().split(':')[0] for a in plot_compare(hs[:2], titles=['a', 'b']).axes if a.images] == ['a', 'b']

def test_view_options_change_only_the_view():
    h = fake_history()
    im = plot_heatmap(h, vmin=1e-3, vmax=1e-1, cmap='magma').axes[0].images[0]
    assert (im.norm.vmin, im.norm.vmax, im.get_cmap().name) == (1e-3, 1e-1, 'magma')
    fig = Figure(); ax = fig.add_subplot()
    assert plot_heatmap(h, ax=ax) is fig and ax.images

def test_loaded_history_plots_the_same(tmp_path):
    h = fake_history('gradual')
    h2 = RunHistory.load(h.save(tmp_path/'run.npz'))
    assert fig_to_png(plot_report(h2), dpi=40) == fig_to_png(plot_report(h), dpi=40)

# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize('call,msg', [
    (lambda h: plot_heatmap(h, group_by='stage'), "use 'layer'"),
    (lambda h: plot_heatmap(h, vmin=0, vmax=1), '0 < vmin < vmax'),
    (lambda h: plot_heatmap(h, cmap='rainbowz'), 'not a matplotlib colormap'),
    (lambda h: plot_heatmap({'layers': []}), 'needs a RunHistory'),
    (lambda h: plot_compare([]), 'at least one'),
    (lambda h: plot_compare([h, h], titles=['x']), 'one title per history'),
    (lambda h: plot_importance(pd.DataFrame(dict(group=[0]))), 'layer_importance'),
])
def test_bad_input_says_what_to_do(call, msg):
    with pytest.raises((ValueError, TypeError), match=re.escape(msg)): call(fake_history())

# ---------------------------------------------------------------- fixed layout: every text inside the figure, none on another
def drawn_texts(fig, monkeypatch):
    "(text, bbox in pixels) of every visible text that is drawn when `fig` is saved."
    from matplotlib.text import Text
    seen, orig = [], Text.draw
    def spy(self, renderer):
        if self.get_visible() and self.get_text().strip(): seen.append((self.get_text(), self.get_window_extent(renderer)))
        return orig(self, renderer)
    monkeypatch.setattr(Text, 'draw', spy)
    fig_to_png(fig)
    monkeypatch.setattr(Text, 'draw', orig)
    return seen

def long_names(h):
    "`h` with layer names as long as timm's inside a fastai learner (`0.model.blocks.5.3.conv_pwl`)."
    kinds = {'conv': 'conv_pwl', 'batchnorm': 'bn2', 'linear': 'fc'}
    names = [f'0.model.blocks.{i//6}.{i%6}.{kinds.get(k, k)}' if p == 'body' else n
             for i,(n,k,p) in enumerate(zip(h.layers.name, h.layers.kind, h.layers.part))]
    return RunHistory(**{**vars(h), 'layers': h.layers.assign(name=names)})

LAYOUT_CASES = {
    'heatmap, every row named': lambda: plot_heatmap(long_names(fake_history(blocks=(1,1,1,1)))),
    'heatmap, 150 rows': lambda: plot_heatmap(fake_history(blocks=(3,8,20,3), head_depth=2)),
    'heatmap by block, gradual': lambda: plot_heatmap(fake_history('gradual'), group_by='block'),
    'phase bars': lambda: plot_phase_bars(fake_history(train_bn=False)),
    'lrs': lambda: plot_lrs(fake_history('gradual')),
    'lrs, under two decades': lambda: plot_lrs(fake_history('no_discriminative', lr_mult=1, freeze_epochs=0)),
    'losses': lambda: plot_losses(fake_history(epochs=3)),
    'update ratio': lambda: plot_update_ratio(fake_history()),
    'report': lambda: plot_report(fake_history()),
    'report, long names': lambda: plot_report(long_names(fake_history(blocks=(1,1,1,1)))),
    'compare, shared scale': lambda: plot_compare([fake_history(), fake_history(head_depth=2, freeze_epochs=2)]),
    'compare, three runs, rows named once': lambda: plot_compare([fake_history(s) for s in ('fine_tune', 'head_only', 'full')], group_by='block'),
    'report, 10 in, blocks': lambda: plot_report(fake_history('gradual'), width=10, group_by='block'),
    'report, 10 in, layers': lambda: plot_report(long_names(fake_history()), width=10),
    'heatmap with the Lab title': lambda: plot_heatmap(fake_history(seeds=2), title=config_title(fake_history(seeds=2))),
    'report, 10 in, repeats': lambda: plot_report(fake_history(seeds=2), width=10, group_by='block'),
    'compare fine_tune with head_only': lambda: plot_compare([fake_history(), fake_history('head_only', seed=1)]),
    'compare, three runs, repeats': lambda: plot_compare([fake_history(s, seeds=2) for s in ('fine_tune', 'head_only', 'full')], group_by='block'),
    'compare, own scales, long titles': lambda: plot_compare([fake_history(), fake_history('gradual', seed=1)],
                                                             titles=['a title far too long to fit above one panel of the figure']*2,
                                                             shared_scale=False),
}

@pytest.mark.parametrize('case', list(LAYOUT_CASES))
def test_every_text_is_inside_the_figure_and_clear_of_the_others(case, monkeypatch):
    fig = LAYOUT_CASES[case]()
    texts = drawn_texts(fig, monkeypatch)
    W, H = fig.get_size_inches()*100
    assert len(texts) > 10
    for s,b in texts: assert b.x0 >= -1 and b.y0 >= -1 and b.x1 <= W+1 and b.y1 <= H+1, f'{s!r} sticks out of the figure: {b}'
    for i,(s,b) in enumerate(texts):
        for s2,b2 in texts[i+1:]:
            w, h = min(b.x1, b2.x1) - max(b.x0, b2.x0), min(b.y1, b2.y1) - max(b.y0, b2.y0)
            assert w <= 1 or h <= 1, f'{s!r} and {s2!r} overlap by {w:.0f} x {h:.0f} px'

def test_row_names_sit_left_of_the_cells_and_group_names_left_of_the_colour_bar(monkeypatch):
    fig = plot_heatmap(long_names(fake_history(blocks=(1,1,1,1))))
    texts = dict(drawn_texts(fig, monkeypatch))
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    ax, r = fig.axes[0], FigureCanvasAgg(fig).get_renderer()
    (grad,) = [i for i in ax.images if i.get_gid() == 'colorbar']
    box, cbar = ax.get_window_extent(r), grad.get_window_extent(r)
    rows = [texts[n] for n in row_labels(ax)]
    assert len(rows) == 28 and all(b.x1 <= box.x0 for b in rows) and min(b.x0 for b in rows) > 0
    groups = [texts[t.get_text()] for t in ax.texts if t.get_gid() == 'group_label']
    assert all(box.x1 <= b.x0 and b.x1 < cbar.x0 for b in groups)

def test_own_scales_give_each_run_its_colour_bar():
    hs = [fake_history(), fake_history(seed=1, base_lr=2e-2)]
    fig = plot_compare(hs, shared_scale=False)
    axs = [a for a in fig.axes if a.images]
    bars = lambda axs: [[i for i in a.images if i.get_gid() == 'colorbar'] for a in axs]
    assert [len(b) for b in bars(axs)] == [1, 1]
    assert [(a.images[0].norm.vmin, a.images[0].norm.vmax) for a in axs] == [color_limits([h]) for h in hs]
    for a,(b,) in zip(axs, bars(axs)): assert b.norm is a.images[0].norm and b.get_cmap() is a.images[0].get_cmap()
    shared = plot_compare(hs)
    assert [len(b) for b in bars(a for a in shared.axes if a.images)] == [0, 1]

def test_colour_bar_ticks_name_the_decades_of_the_scale():
    ax = plot_heatmap(fake_history(), vmin=1e-4, vmax=3e-1).axes[0]
    ticks = [t.get_text() for t in ax.texts if t.get_gid() == 'colorbar_tick']
    assert ticks == ['10⁻⁴', '10⁻³', '10⁻²', '10⁻¹']
    ys = [t.get_position()[1] for t in ax.texts if t.get_gid() == 'colorbar_tick']
    np.testing.assert_allclose(ys, (np.arange(-4, 0) - np.log10(1e-4))/(np.log10(3e-1) - np.log10(1e-4)))
    (grad,) = [i for i in ax.images if i.get_gid() == 'colorbar']
    v = grad.get_array()
    assert v[0, 0] == pytest.approx(3e-1) and v[-1, 0] == pytest.approx(1e-4)     # largest change at the top
    narrow = plot_heatmap(fake_history(), vmin=.02, vmax=.1).axes[0]           # under one decade: three values
    assert [t.get_text() for t in narrow.texts if t.get_gid() == 'colorbar_tick'] == ['0.02', '0.045', '0.1']

def test_text_width_measures_like_matplotlib():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fig = Figure(); r = FigureCanvasAgg(fig).get_renderer()
    for s,size in [('0.model.blocks.5.3.conv_pwl', 7), ('group 2\n(head)', 8), ('x', 10)]:
        t = fig.text(0, 0, s, fontsize=size)
        assert text_width([s], size)*fig.dpi == pytest.approx(t.get_window_extent(r).width, rel=.05, abs=2)
    assert text_width(['iii', 'WWWW'], 10) > text_width(['WWWW'], 10)*.99 > text_width(['iii'], 10) > 0 == text_width([], 10)

# ---------------------------------------------------------------- threads and memory
def test_figures_render_from_threads_without_pyplot():
    import matplotlib.pyplot as plt
    before = plt.get_fignums()
    hs = [fake_history(s, steps_per_epoch=5) for s in ('fine_tune', 'gradual', 'head_only')]
    serial = [fig_to_png(plot_report(h), dpi=40) for h in hs]
    out, errs = [None]*len(hs), []
    def work(i):
        try: out[i] = fig_to_png(plot_report(hs[i]), dpi=40)
        except Exception as e: errs.append(e)
    ts = [threading.Thread(target=work, args=(i,)) for i in range(len(hs))]
    for t in ts: t.start()
    for t in ts: t.join()
    assert not errs and out == serial
    assert plt.get_fignums() == before   # nothing registered with pyplot

@pytest.mark.slow
def test_figures_are_freed():
    refs = []
    for i in range(8):
        fig = plot_report(fake_history(seed=i, steps_per_epoch=5))
        fig_to_png(fig, dpi=40)
        refs.append(weakref.ref(fig))
        del fig
    gc.collect()
    assert sum(r() is not None for r in refs) == 0


def test_losses_draw_the_baselines_the_run_recorded():
    h = fake_history(); h.baselines = dict(majority=0.31, zero_shot=0.04)
    fig = plot_losses(h)
    lines = {l.get_gid(): l for a in fig.axes for l in a.lines}
    assert lines['baseline_majority'].get_ydata()[0] == 0.31 and lines['baseline_zero_shot'].get_ydata()[0] == 0.04
    assert 'baseline_majority' not in {l.get_gid() for a in plot_losses(fake_history(n_valid=0)).axes for l in a.lines}   # none recorded

def test_compare_titles_say_whether_a_run_beat_the_larger_class():
    "The compare titles carry the error and the larger class's, from the same words as explain."
    good, bad = fake_history(), fake_history('full')
    bad.valid_preds = bad.baseline_preds['majority'].copy()                 # answers exactly like the larger class
    fig = plot_compare([good, bad])
    titles = [a.get_title().replace('\n', ' ') for a in fig.axes if a.get_title()]
    assert any(f"error {good.final_errors().short()} (larger class: 30.0 %)" in t for t in titles)

def test_repeats_show_mean_and_range_in_compare_titles():
    h = fake_history(seeds=3)
    titles = [a.get_title().replace('\n', ' ') for a in plot_compare([h, fake_history(seeds=3, head_depth=2)]).axes if a.images]
    assert all('3 seeds: mean' in t for t in titles)

def test_phase_bars_show_movement_during_each_phase():
    "The bars are ‖W_end − W_start‖ / ‖W₀‖ per phase, not the growth of the distance from the start."
    h = fake_history()
    ax = plot_phase_bars(h).axes[0]
    (p, f, a, b) = h.phase_spans()[1]
    (bars,) = [c for c in ax.collections if c.get_gid() == 'moved_1']
    tops = np.array([q.vertices[1:3, 1].max() for q in bars.get_paths()])
    np.testing.assert_allclose(tops, h.phase_move(a, b), rtol=1e-6)
    assert (h.phase_move(a, b) > h.phase_growth(a, b) + 1e-4).any()     # they differ, and the bars show the movement
    assert ax.get_ylabel() == '‖W_end − W_start‖ / ‖W₀‖ (log)' and 'moved during each phase' in ax.get_title()
    old = RunHistory(**{**vars(h), 'fit_change': np.full_like(h.change, np.nan)})   # an older file: growth only, said so
    assert plot_phase_bars(old).axes[0].get_ylabel() == 'growth of ‖W − W₀‖ / ‖W₀‖ (log)'

def test_report_title_names_head_pooling_and_images():
    "The report title carries head width, dropout, pooling and how many photos trained and validated."
    fig = plot_report(fake_history())
    t = fig.get_suptitle().replace('\n', ' ')
    for s in ['head 1×512, dropout 0.5, concat pool', '320 train / 400 valid images', 'error ']: assert s in t, (s, t)


# ---------------------------------------------------------------- sized for where they are shown
def test_report_width_and_views():
    "The Lab's report: 10 in (shown 1:1, 1,000 px), phase bars on their own row; rows and colour map as asked."
    h = fake_history('gradual')
    fig = plot_report(h, width=10, group_by='block', cmap='magma')
    assert fig.get_size_inches()[0] == 10 and len(fig.axes) >= 4
    heat = next(a for a in fig.axes if a.images)
    assert heat.images[0].get_cmap().name == 'magma' and row_labels(heat) == [k for k,_,_ in layer_blocks(h.layers)]
    assert min(t.get_fontsize() for t in heat.texts if t.get_gid() == 'row_label') >= 8   # 11 px at 100 dpi, 1:1
    with pytest.raises(ValueError, match='width'): plot_report(h, width=3)

def test_compare_names_shared_rows_once_and_keeps_text_readable():
    hs = [fake_history(s) for s in ('fine_tune', 'head_only', 'full')]
    fig = plot_compare(hs, group_by='block')
    axs = [a for a in fig.axes if a.images]
    names = [row_labels(a) for a in axs]
    assert names[0] == [k for k,_,_ in layer_blocks(hs[0].layers)] and names[1] == names[2] == []   # named once, on the left
    groups = [[t for t in a.texts if t.get_gid() == 'group_label'] for a in axs]
    assert [len(g) for g in groups] == [0, 0, 3]                                                  # groups once, on the right
    assert all(a.title.get_fontsize() == 11 for a in axs) and fig.get_size_inches()[0] <= 13.01
    own = plot_compare(hs, group_by='block', shared_scale=False)                                  # own scales: every panel whole
    assert all(row_labels(a) for a in own.axes if a.images)

def test_error_rate_markers_are_never_clipped():
    "The highest error-rate marker sits below the top of the loss panel's error axis, with room for the marker."
    h = fake_history(epochs=2)
    h.epochs['error_rate'] = [.58, .33, .2]
    fig = plot_losses(h)
    (e,) = [l for a in fig.axes for l in a.lines if l.get_gid() == 'error_rate']
    assert e.axes.get_ylim()[1] >= 1.1*.58


@pytest.mark.parametrize('epochs', [1, 3])
def test_the_last_epoch_markers_are_whole(epochs):
    "The last valid-loss and error-rate markers lie wholly inside the loss panel (x limit padded)."
    for fig in (plot_losses(fake_history(epochs=epochs)), plot_report(fake_history(epochs=epochs), width=10)):
        fig_to_png(fig, dpi=40)
        for gid in ('valid_loss', 'error_rate'):
            (l,) = [l for a in fig.axes for l in a.lines if l.get_gid() == gid]
            box, (x, _) = l.axes.get_window_extent(), l.axes.transData.transform((l.get_xdata()[-1], l.get_ydata()[-1]))
            half = (l.get_markersize() + l.get_markeredgewidth())/2*fig.dpi/72
            assert box.x0 <= x - half and x + half <= box.x1, (gid, x + half, box.x1)

# ---------------------------------------------------------------- histories that load but are degenerate
def _all_moved_alike(h, v=.01):
    h.change[:] = np.where(np.nan_to_num(h.change) > 0, v, h.change)
    return h

@pytest.mark.parametrize('draw', [lambda h: plot_report(h), lambda h: plot_heatmap(h, group_by='layer'),
                                  lambda h: plot_compare([h, fake_history(seed=1)]), lambda h: plot_compare([h, h], shared_scale=False)])
def test_every_moved_cell_with_the_same_change_still_draws(draw):
    "One change everywhere leaves no range for a log scale: the colours still span a decade below it, and the figure draws."
    h = _all_moved_alike(fake_history(steps_per_epoch=3))
    vmin, vmax = color_limits([h])
    assert 0 < vmin < vmax and vmax == pytest.approx(.01)
    assert is_png(fig_to_png(draw(h), dpi=40))

def test_dollar_signs_in_layer_names_and_titles_are_drawn_as_text():
    "torch's add_module allows '$' in a name: it is a name, not matplotlib mathtext (an odd pair failed to parse)."
    h = fake_history(steps_per_epoch=3)
    names = [f'a$x^{{{i}$' for i in range(len(h.layers))]
    h.layers['name'] = names
    for group_by in ('layer', 'block'):
        fig = plot_report(h, group_by=group_by, title='cost $5 $x^{ title')
        assert is_png(fig_to_png(fig, dpi=40))
    fig = plot_heatmap(h, group_by='layer', max_labels=200, title='a $x^{ title')
    assert is_png(fig_to_png(fig, dpi=40)) and row_labels(fig.axes[0]) == names
    assert is_png(fig_to_png(plot_compare([h, h], titles=['$a^{', '$b$']), dpi=40))
