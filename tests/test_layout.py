"The package's layout: one idea per module, imports only go down the flow Config → data → learner → tracker → history → words/figures."
import ast
from pathlib import Path
import pytest
import finetune_lab

PKG = Path(finetune_lab.__file__).parent
# lowest first: a module may import only modules before it. `testing` is a test helper the library never imports.
ORDER = ['data', 'models', 'history', 'freezing', 'tracker', 'experiment', 'testing', 'explain', 'plots', 'importance',
         'representation', 'lab', 'cli', 'console']
LIBRARY = [m for m in ORDER if m != 'testing']

def own_imports(mod:str) -> set:
    "The finetune_lab modules `mod` imports (relative or absolute, at any depth of its code)."
    tree, out = ast.parse((PKG/f'{mod}.py').read_text()), set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            name = n.module or ''
            if n.level: out.add(name.split('.')[0] if name else None)
            elif name.startswith('finetune_lab.'): out.add(name.split('.')[1])
            elif name == 'finetune_lab': out.update(a.name for a in n.names)
        elif isinstance(n, ast.Import):
            out.update(a.name.split('.')[1] for a in n.names if a.name.startswith('finetune_lab.'))
    return out - {None, '__init__', '_modidx'} - {'__version__'}

def test_every_module_has_a_place_in_the_flow():
    mods = {p.stem for p in PKG.glob('*.py')} - {'__init__', '_modidx'}
    assert mods <= set(ORDER), f"place {sorted(mods - set(ORDER))} in ORDER"

@pytest.mark.parametrize('mod', [m for m in ORDER if (PKG/f'{m}.py').exists()])
def test_imports_only_go_down(mod):
    below = set(ORDER[:ORDER.index(mod)])
    up = own_imports(mod) - below
    assert not up, f"{mod} imports {sorted(up)}, which come after it in {ORDER}"
    if mod != 'testing': assert 'testing' not in own_imports(mod), f"the library module {mod} imports the test helper testing"

def test_the_check_fails_on_an_upward_import(tmp_path, monkeypatch):
    "The checker itself: an import of a higher module is seen, relative or absolute."
    (tmp_path/'history.py').write_text("from .plots import fig_to_png\nimport finetune_lab.lab\n")
    monkeypatch.setattr(__import__(__name__), 'PKG', tmp_path)
    assert own_imports('history') == {'plots', 'lab'}

def test_the_package_is_pyflakes_clean():
    "No unused import, undefined or shadowed name in the exported modules (they are generated: fix the notebook)."
    import subprocess, sys
    r = subprocess.run([sys.executable, '-m', 'pyflakes', str(PKG)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

def test_the_tests_are_pyflakes_clean():
    "No unused import, undefined or shadowed name in the tests either."
    import subprocess, sys
    r = subprocess.run([sys.executable, '-m', 'pyflakes', str(Path(__file__).parent)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

# The notebooks: numbered in the order of the flow, each importing only modules of earlier notebooks.
NBS = PKG.parent/'nbs'
READERS = {'explain', 'plots', 'importance'}   # words and figures: they read a RunHistory, never a run's machinery
READS = {'data', 'history', 'explain', 'plots'}

def notebook_modules(nbs=NBS) -> dict:
    "Each numbered notebook's exported module, by the notebook's number."
    import json, re
    out = {}
    for p in sorted(nbs.glob('[0-9][0-9]_*.ipynb')):
        src = '\n'.join(''.join(c['source']) for c in json.loads(p.read_text())['cells'] if c['cell_type'] == 'code')
        m = re.search(r'^#\|\s*default_exp\s+(\w+)', src, re.M)
        assert m, f"{p.name} exports no module (#| default_exp)"
        out[int(p.name[:2])] = (m.group(1), p, src)
    return out

def test_notebooks_are_numbered_in_the_order_of_the_flow():
    mods = [m for m, *_ in notebook_modules().values()]
    assert mods == [m for m in ORDER if m in mods], f"notebook order {mods} differs from the flow {ORDER}"
    assert set(mods) == {p.stem for p in PKG.glob('*.py')} - {'__init__', '_modidx'}, "every module has its own numbered notebook"

def late_imports(nbs=NBS) -> list:
    "`(notebook, module)` for each finetune_lab module a notebook imports that only a later notebook makes."
    import re
    mods, out = notebook_modules(nbs), []
    for n, (mod, p, src) in mods.items():
        earlier = {m for k, (m, *_) in mods.items() if k <= n}
        out += [(p.name, u) for u in sorted(set(re.findall(r'^\s*(?:from|import)\s+finetune_lab\.(\w+)', src, re.M)) - earlier)]
    return out

def test_notebooks_import_only_earlier_notebooks():
    "Not only the exported code: a notebook's examples and tests too use only what earlier notebooks made."
    assert not late_imports(), f"notebooks import modules that later notebooks make: {late_imports()}"

def test_words_and_figures_read_histories_only():
    "explain, plots and importance take what they say from a RunHistory: none of them imports the run's machinery."
    for mod in READERS:
        assert own_imports(mod) <= READS, f"{mod} imports {sorted(own_imports(mod) - READS)}; words and figures read histories only"

def test_the_notebook_check_sees_a_late_import(tmp_path):
    "The checker itself: a notebook importing a module a later notebook makes is caught."
    import json
    def nb(name, *srcs):
        cells = [dict(cell_type='code', source=s, metadata={}, outputs=[], execution_count=None) for s in srcs]
        (tmp_path/name).write_text(json.dumps(dict(cells=cells, metadata={}, nbformat=4, nbformat_minor=5)))
    nb('00_data.ipynb', '#| default_exp data', 'from finetune_lab.models import ARCHS')
    nb('01_models.ipynb', '#| default_exp models')
    assert late_imports(tmp_path) == [('00_data.ipynb', 'models')]

ISSUE_REF = r'\bissues?\s+#?\d+|(?:^|[\s(])#\d{1,4}\b'   # 'issue 16', 'issues 16, 22', '(#22)', not a colour '#555'

def issue_refs(paths) -> list:
    "`path:line` of every issue-number reference in the given Python files."
    import re
    return [f'{p.name}:{i}' for p in paths for i, l in enumerate(p.read_text().splitlines(), 1)
            if re.search(ISSUE_REF, l) and not l.startswith('# %%')]

def test_no_issue_numbers_in_code_or_tests():
    root = PKG.parent
    files = [p for d in ('finetune_lab', 'tests', 'tools', 'bench') for p in (root/d).glob('*.py')
             if p.name not in ('_modidx.py', 'test_layout.py')]   # this file holds the examples
    assert not issue_refs(files), f"say what the code does, not which issue asked for it: {issue_refs(files)}"

def test_the_issue_check_sees_a_reference(tmp_path):
    (tmp_path/'a.py').write_text('x = 1  # see issue 16\ny = 2  # fixes #22\nz = "color:#555"  # step 2\n')
    assert issue_refs([tmp_path/'a.py']) == ['a.py:1', 'a.py:2']

MAX_EXPORT_LINES = 30   # a cell a reader takes in at one look (fastcore's notebooks: a median of 6)

def long_export_cells(nbs=NBS) -> list:
    "`notebook:cell id (lines)` of every exported cell longer than MAX_EXPORT_LINES."
    import json, re
    out = []
    for p in sorted(nbs.glob('*.ipynb')):
        for c in json.loads(p.read_text())['cells']:
            src = ''.join(c['source'])
            if c['cell_type'] == 'code' and re.search(r'^#\|\s*export', src, re.M) and len(src.splitlines()) > MAX_EXPORT_LINES:
                out.append(f"{p.name}:{c.get('id')} ({len(src.splitlines())} lines)")
    return out

def test_export_cells_are_short():
    assert not long_export_cells(), f"split these into a function or class per cell: {long_export_cells()}"

def test_the_cell_check_sees_a_long_cell(tmp_path):
    import json
    cells = [dict(cell_type='code', id='long', source='#| export\n' + 'x = 1\n'*30, metadata={}, outputs=[], execution_count=None),
             dict(cell_type='code', id='ok', source='#| export\n' + 'x = 1\n'*29, metadata={}, outputs=[], execution_count=None)]
    (tmp_path/'a.ipynb').write_text(json.dumps(dict(cells=cells, metadata={}, nbformat=4, nbformat_minor=5)))
    assert long_export_cells(tmp_path) == ['a.ipynb:long (31 lines)']
