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
