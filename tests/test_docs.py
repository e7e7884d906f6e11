"The committed notebooks are the docs (no Quarto here): they carry their outputs, figures included, and a kernel."
import json
from pathlib import Path
import pytest

NBS = Path(__file__).parents[1]/'nbs'
NOTEBOOKS = sorted(NBS.glob('*.ipynb'))

def outputs(nb:dict) -> list: return [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]
def images(nb:dict) -> list: return [o for o in outputs(nb) if 'image/png' in o.get('data', {})]

@pytest.mark.parametrize('name', ['lesson.ipynb', 'index.ipynb'])
def test_lesson_and_index_show_their_figures(name):
    nb = json.loads((NBS/name).read_text())
    assert images(nb), f"{name} has no figure in its outputs: run tools/refresh_notebooks.sh nbs/{name} and commit it"

@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_is_executed_and_names_its_kernel(path):
    nb = json.loads(path.read_text())
    assert nb['metadata'].get('kernelspec', {}).get('name'), f"{path.name} has no kernelspec: JupyterLab would ask for one"
    if path.name != 'app.ipynb':   # the Voila app is run by Voila, not read
        assert outputs(nb), f"{path.name} has no outputs: run tools/refresh_notebooks.sh {path.relative_to(NBS.parent)} and commit it"

@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.name)
def test_committed_outputs_carry_no_library_warnings_and_no_widget_state(path):
    "What a reader sees: no warning from inside an installed library (it names the machine's paths), no saved widget."
    nb = json.loads(path.read_text())
    text = json.dumps(outputs(nb))
    assert 'site-packages' not in text, f"{path.name}: a library's warning in the outputs: run python tools/tidy_outputs.py {path.name}"
    assert 'widgets' not in nb['metadata'] and 'widget-view+json' not in text, \
        f"{path.name}: saved widget state (shows as VBox(children=...) without a kernel): run python tools/tidy_outputs.py"
    frames = [o for o in outputs(nb) if o.get('output_type') == 'stream' and '\r' in ''.join(o['text'])]
    assert not frames, f"{path.name}: progress bars kept frame by frame in the outputs: run python tools/tidy_outputs.py"


def test_tidy_keeps_what_a_terminal_shows_of_a_progress_bar():
    import sys
    sys.path.insert(0, str(NBS.parent/'tools'))
    from tidy_outputs import terminal
    fit = ("█\repoch     train_loss  valid_loss  time    \n█\r\rEpoch 1/1 : |-----| 0.00% [0/3 00:00<?]\r"
           "Epoch 1/1 : |█████| 100.00% [3/3 00:01<00:00]\rEpoch 1/1 :          \r0         0.674983    0.700485    00:02     \n")
    assert terminal(fit) == "epoch     train_loss  valid_loss  time    \n0         0.674983    0.700485    00:02     \n"
    assert terminal("no bar here\n") == "no bar here\n"

def test_tidy_keeps_the_packages_own_warnings():
    import sys
    sys.path.insert(0, str(NBS.parent/'tools'))
    from tidy_outputs import tidy_stream
    lib = ("/usr/lib/python3/site-packages/torch/jit/_script.py:1491: FutureWarning: `torch.jit.script` is deprecated.\n"
           "  warnings.warn(\n")
    ours = "<ipython-input-21-2d3b39d15cc6>:13: UserWarning: WeightChangeTracker: 808 frozen parameters\n  learn.fit(1)\n"
    assert tidy_stream(lib) == '' and tidy_stream(lib + ours) == ours and tidy_stream(ours + lib) == ours


# The README's and the index's demo figure: what today's code draws from the histories it was drawn from.
def figure_drift(png:bytes, fig) -> list:
    "The texts in which the stamped `png` and a fresh drawing `fig` differ, as (committed, now) pairs ('' where one has none)."
    from itertools import zip_longest
    from finetune_lab.plots import figure_text, stamp_of
    was, now = stamp_of(png), figure_text(fig)
    assert was is not None, "the image keeps no text stamp: redraw it with python tools/refresh_images.py"
    return [(a, b) for a, b in zip_longest(was, now, fillvalue='') if a != b]

def test_the_readme_figure_is_what_the_code_draws_today():
    import sys
    sys.path.insert(0, str(NBS.parent/'tools'))
    from refresh_images import demo_figure, IMAGES
    png = (IMAGES/'demo_compare.png').read_bytes()
    drift = figure_drift(png, demo_figure())
    assert not drift, f"nbs/images/demo_compare.png is stale ({drift[:3]} ...): run python tools/refresh_images.py and look at it"

def test_the_figure_check_sees_a_renamed_layer():
    from finetune_lab.testing import fake_history
    from finetune_lab.plots import plot_compare, fig_to_png
    hs = [fake_history(), fake_history('head_only')]
    png = fig_to_png(plot_compare(hs, titles=['a', 'b']), stamp=True)
    assert figure_drift(png, plot_compare(hs, titles=['a', 'b'])) == []
    renamed = hs[0].layers.copy(); renamed.loc[0, 'name'] = 'conv_stem'
    hs[0].layers = renamed
    assert ('0.0 … 0.1', 'conv_stem') in figure_drift(png, plot_compare(hs, titles=['a', 'b']))   # its first row label

def test_saving_from_jupyterlab_leaves_a_notebook_as_committed():
    """JupyterLab writes its kernel's display name and Python version into every notebook it opens (so it shows as
    modified); with `jupyter_hooks = true` and `nbdev-install-hooks`, nbdev cleans them away on save."""
    import copy
    from nbdev.clean import clean_jupyter
    path = NBS/'13_console.ipynb'
    committed = json.loads(path.read_text())
    saved = copy.deepcopy(committed)
    saved['metadata']['kernelspec']['display_name'] = 'Python 3 (ipykernel)'
    saved['metadata']['language_info'] = dict(name='python', version='3.11.7', file_extension='.py', mimetype='text/x-python')
    clean_jupyter(path=path, model=dict(type='notebook', content=saved))
    assert saved['metadata'] == committed['metadata']
