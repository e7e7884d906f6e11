"fig_to_png and HeatmapPNG draw with matplotlib's public API: their pixels are savefig's."
import io, re
from pathlib import Path
import numpy as np, pytest
from PIL import Image
import finetune_lab.plots as P
from finetune_lab.testing import fake_history
from finetune_lab.plots import fig_to_png, plot_heatmap, plot_report, plot_compare, plot_lrs, HeatmapPNG

def pixels(png:bytes) -> np.ndarray: return np.asarray(Image.open(io.BytesIO(png)).convert('RGBA'))

def savefig_pixels(fig, dpi=100) -> np.ndarray:
    buf = io.BytesIO(); fig.savefig(buf, format='png', dpi=dpi); return pixels(buf.getvalue())

FIGS = {'report': lambda: plot_report(fake_history('gradual')),
        'heatmap_blocks': lambda: plot_heatmap(fake_history(blocks=(3,8,16,6)), group_by='block'),
        'compare': lambda: plot_compare([fake_history(), fake_history('full', seed=1)])}

@pytest.mark.parametrize('name', FIGS)
def test_fig_to_png_draws_what_savefig_draws(name):
    fig = FIGS[name]()
    assert (pixels(fig_to_png(fig)) == savefig_pixels(fig)).all()

@pytest.mark.parametrize('dpi', [50, 150])
def test_fig_to_png_honours_dpi_and_leaves_the_figure_its_canvas(dpi):
    fig = plot_lrs(fake_history()); canvas = fig.canvas
    png = fig_to_png(fig, dpi=dpi)
    assert fig.canvas is canvas and fig.dpi == 100
    w, h = fig.get_size_inches()
    assert pixels(png).shape == (round(h*dpi), round(w*dpi), 4)

@pytest.mark.parametrize('cmap', [None, 'magma', 'cividis'])
def test_heatmap_png_recolours_to_the_pixels_of_a_fresh_drawing(cmap):
    h = fake_history()
    hp = HeatmapPNG(plot_heatmap(h))
    want = plot_heatmap(h, cmap=cmap) if cmap else plot_heatmap(h)
    assert (pixels(hp.png(cmap)) == savefig_pixels(want)).all()

def test_heatmap_png_needs_one_heatmap():
    with pytest.raises(ValueError, match='one heatmap'): HeatmapPNG(plot_compare([fake_history(), fake_history(seed=1)]))

@pytest.mark.parametrize('steps_per_epoch', [5, 500, 3000])   # cells wider than pixels, about as wide, narrower
def test_heatmap_colours_cells_before_scaling_without_changing_a_pixel(steps_per_epoch):
    "plot_heatmap colours the cells and then scales them to pixels (interpolation_stage='rgba'): as if scaled first."
    fig = plot_heatmap(fake_history('gradual', steps_per_epoch=steps_per_epoch))
    ims = [im for ax in fig.axes for im in ax.images]
    assert len(ims) == 2 and all(im.get_interpolation_stage() == 'rgba' for im in ims)   # the cells and the colour bar
    rgba_first = pixels(fig_to_png(fig))
    for im in ims: im.set_interpolation_stage('data')
    assert (pixels(fig_to_png(fig)) == rgba_first).all()

def test_plots_uses_no_private_matplotlib_name():
    "plots.py draws through matplotlib's public API only: no `obj._name` access and no import of a private module or name."
    src = Path(P.__file__).read_text()
    code = '\n'.join(l.split('#')[0] for l in src.splitlines())
    assert not re.findall(r'\b(?:fig|ax|axis|canvas|renderer|font|im|self\.\w+|\w+)\._[a-z]\w*', code.replace('self._lock', ''))
    assert not re.findall(r'from matplotlib[\w.]* import[^\n]*\b_\w+|matplotlib\.[\w.]*\._', code)
