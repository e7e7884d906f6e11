"fig_to_png's own PNG writer and glyph cache: the pixels are matplotlib's, whatever the cache holds."
import io, threading
import numpy as np, pytest
from PIL import Image
from matplotlib.figure import Figure
import finetune_lab.plots as P
from finetune_lab.plots import (synthetic_history, fig_to_png, plot_heatmap, plot_report, plot_compare, plot_lrs,
                                HeatmapPNG, GlyphCanvas, _png, _clear_text_cache, _text_caches)

def pixels(png:bytes) -> np.ndarray: return np.asarray(Image.open(io.BytesIO(png)).convert('RGBA'))

def savefig_pixels(fig, dpi=100) -> np.ndarray:
    "What matplotlib itself draws: savefig through its own Agg canvas and PIL."
    buf = io.BytesIO(); fig.savefig(buf, format='png', dpi=dpi); return pixels(buf.getvalue())

def text_fig() -> Figure:
    "Text the cache must draw as matplotlib does (rotations, sizes, unicode, a fallback glyph) and text it must leave to matplotlib (mathtext, no antialiasing)."
    fig = Figure(figsize=(4, 3)); ax = fig.add_subplot()
    ax.set_title('‖W − W₀‖ / ‖W₀‖ · 10⁻³ → head'); ax.set_ylabel('rotated 90°'); ax.set_xlabel('x label, 11 pt', fontsize=11)
    ax.text(.1, .8, 'at 33°, 7.3 pt', rotation=33, fontsize=7.3)
    ax.text(.1, .5, r'mathtext $\alpha_i^2 \times 10^{-3}$')
    ax.text(.1, .3, 'not antialiased', antialiased=False)
    ax.text(.5, .6, 'alpha=.5', alpha=.5, color='C3')
    ax.text(.55, .2, 'serif bold', family='serif', weight='bold')
    ax.text(.05, .05, 'ab → W₀', family=['cmr10', 'DejaVu Sans'])   # '→' and '₀' come from the fallback font
    return fig

FIGS = {'report': lambda: plot_report(synthetic_history('gradual')),
        'heatmap_blocks': lambda: plot_heatmap(synthetic_history(blocks=(3,8,16,6)), group_by='block'),
        'compare': lambda: plot_compare([synthetic_history(), synthetic_history('full', seed=1)]),
        'text': text_fig}

@pytest.mark.parametrize('name', list(FIGS))
def test_fig_to_png_draws_matplotlibs_pixels_with_an_empty_and_a_full_glyph_cache(name):
    fig = FIGS[name]()
    ref = savefig_pixels(fig)
    _clear_text_cache()
    cold = pixels(fig_to_png(fig))
    warm = pixels(fig_to_png(fig))   # every string and glyph now comes from the cache
    assert cold.shape == ref.shape and (cold == ref).all(), f"{(cold != ref).any(-1).sum()} pixels differ (empty cache)"
    assert (warm == ref).all(), f"{(warm != ref).any(-1).sum()} pixels differ (full cache)"
    assert len(_text_caches().glyphs) > 50 or not P._GLYPH_CACHE_OK

def test_cached_glyphs_are_reused_at_new_positions_only_when_the_sub_pixel_offset_matches():
    "A string drawn at x and at x + 3 whole pixels shares its glyph bitmaps; at x + 1/3 px it needs new ones (and still matches matplotlib)."
    if not P._GLYPH_CACHE_OK: pytest.skip("this matplotlib lacks the text internals GlyphCanvas uses; it draws as plain Agg")
    def fig_at(dx_px):
        fig = Figure(figsize=(3, 1), dpi=100); fig.text(.1 + dx_px/300, .5, 'glyphs'); return fig
    _clear_text_cache(); fig_to_png(fig_at(0)); n = len(_text_caches().glyphs)
    assert n == len(set('glyphs'))
    fig = fig_at(3); png = fig_to_png(fig)
    assert len(_text_caches().glyphs) == n, "moving by whole pixels rasterised glyphs again"
    assert (pixels(png) == savefig_pixels(fig)).all()
    fig = fig_at(1/3); png = fig_to_png(fig)
    assert len(_text_caches().glyphs) > n and (pixels(png) == savefig_pixels(fig)).all()

@pytest.mark.parametrize('change', [dict(rotation=90), dict(rotation=33), dict(fontsize=10), dict(family='serif'),
                                    dict(weight='bold')])
def test_a_glyph_at_the_same_anchor_in_another_angle_size_or_font_is_not_taken_for_its_twin(change):
    "The first glyph of a string sits exactly at its anchor whatever the angle, size or font: the cache must key on each."
    def fig_with(**kw):
        fig = Figure(figsize=(2, 2), dpi=100)
        fig.text(.5, .5, 'W', **{'rotation_mode': 'anchor', 'ha': 'left', 'va': 'baseline', 'fontsize': 20, **kw}); return fig
    _clear_text_cache(); fig_to_png(fig_with())
    fig = fig_with(**change)
    assert (pixels(fig_to_png(fig)) == savefig_pixels(fig)).all(), f"{change}: drawn with the first figure's glyph"

def test_glyphs_of_a_fallback_font_rasterise_when_the_string_is_already_shaped():
    "A cached string at a new sub-pixel offset needs new glyphs, some from the font fallback list: matplotlib's pixels still."
    def fig_at(x):
        fig = Figure(figsize=(3, 1), dpi=100); fig.text(x, .5, 'ab → W₀', family=['cmr10', 'DejaVu Sans']); return fig
    _clear_text_cache(); fig_to_png(fig_at(.1))
    n_layouts = len(_text_caches().layouts)
    fig = fig_at(.1 + 1/700)
    assert (pixels(fig_to_png(fig)) == savefig_pixels(fig)).all()
    assert len(_text_caches().layouts) == n_layouts   # shaped once, rasterised twice

@pytest.mark.parametrize('dpi', [50, 72, 150])
def test_fig_to_png_honours_dpi_and_leaves_the_figure_its_canvas(dpi):
    fig = plot_lrs(synthetic_history()); canvas = fig.canvas
    png = fig_to_png(fig, dpi=dpi)
    assert fig.canvas is canvas and fig.dpi == 100
    w, h = fig.get_size_inches()
    assert pixels(png).shape == (round(h*dpi), round(w*dpi), 4)
    assert (pixels(png) == savefig_pixels(fig, dpi)).all()

def test_fig_to_png_runs_layout_engines_as_savefig_does():
    fig = Figure(figsize=(4, 3), layout='constrained'); axs = fig.subplots(1, 2)
    for a in axs: a.set_ylabel('a long y label'); a.set_title('title')
    assert (pixels(fig_to_png(fig)) == savefig_pixels(fig)).all()

@pytest.mark.parametrize('shape', [(1, 1), (7, 3), (37, 101), (1100, 1600)])
def test_png_writer_round_trips_every_pixel(shape):
    rgba = np.random.default_rng(0).integers(0, 256, (*shape, 4), dtype=np.uint8)
    rgba[: shape[0]//2] = (255, 255, 255, 255)   # flat and noisy rows alike
    for level in (0, 1, 9):
        png = _png(rgba, level)
        im = Image.open(io.BytesIO(png)); im.load()   # PIL checks each chunk's CRC
        assert im.mode == 'RGBA' and im.size == shape[::-1] and (np.asarray(im) == rgba).all()

def test_threads_share_the_glyph_cache_and_draw_the_same_pixels():
    "Four threads filling an empty cache at once draw what savefig draws; a new thread then rasterises nothing again."
    h = synthetic_history(); ref = savefig_pixels(plot_report(h))
    _clear_text_cache()
    out, errors = {}, []
    def work(i):
        try: out[i] = pixels(fig_to_png(plot_report(h)))
        except Exception as e: errors.append(e)
    def in_threads(n):
        ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in ts: t.start()
        for t in ts: t.join()
    in_threads(4)
    assert not errors and len(out) == 4 and all((o == ref).all() for o in out.values())
    n = {k: len(v) for k, v in vars(_text_caches()).items()}
    out.clear(); in_threads(1)   # the Lab draws each finished run in a new worker thread
    assert not errors and (out[0] == ref).all()
    assert {k: len(v) for k, v in vars(_text_caches()).items()} == n, "a new thread shaped or rasterised again"

def test_glyph_caches_are_bounded(monkeypatch):
    "A long-lived process (the Lab) never holds more than `_MAX_CACHED` entries per cache: once one is full, all start afresh."
    monkeypatch.setattr(P, '_MAX_CACHED', dict(layouts=10, sizes=10, glyphs=40))
    _clear_text_cache(); fig = plot_lrs(synthetic_history())
    ref = savefig_pixels(fig)
    first = _text_caches()
    for _ in range(3): assert (pixels(fig_to_png(fig)) == ref).all()
    c = _text_caches()
    assert c is not first, "the caches never started afresh"
    assert len(c.layouts) <= 10 and len(c.sizes) <= 10 and len(c.glyphs) <= 40 + 30   # one string's glyphs past the bound at most
    monkeypatch.undo(); _clear_text_cache()

def test_without_the_text_internals_glyph_canvas_is_plain_agg(monkeypatch):
    from matplotlib.backends.backend_agg import RendererAgg
    monkeypatch.setattr(P, '_GLYPH_CACHE_OK', False)
    fig = text_fig(); r = GlyphCanvas(fig).get_renderer()
    assert type(r) is RendererAgg
    assert (pixels(fig_to_png(fig)) == savefig_pixels(fig)).all()

def test_heatmap_png_uses_the_same_writer_and_pixels():
    fig = plot_heatmap(synthetic_history())
    ref = savefig_pixels(fig)
    hp = HeatmapPNG(fig)
    assert (pixels(hp.png()) == ref).all()

@pytest.mark.parametrize('steps_per_epoch', [5, 500, 3000])   # cells wider than pixels, about as wide, narrower
def test_heatmap_colours_cells_before_scaling_without_changing_a_pixel(steps_per_epoch):
    "plot_heatmap colours the cells and then scales them to pixels (interpolation_stage='rgba'): as if scaled first."
    fig = plot_heatmap(synthetic_history('gradual', steps_per_epoch=steps_per_epoch))
    ims = [im for ax in fig.axes for im in ax.images]
    assert len(ims) == 2 and all(im.get_interpolation_stage() == 'rgba' for im in ims)   # the cells and the colour bar
    rgba_first = pixels(fig_to_png(fig))
    for im in ims: im.set_interpolation_stage('data')
    assert (pixels(fig_to_png(fig)) == rgba_first).all()
