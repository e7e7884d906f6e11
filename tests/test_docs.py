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
