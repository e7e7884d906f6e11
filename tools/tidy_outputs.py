"""Keep what a reader wants in the committed notebook outputs (they are the docs):

    python tools/tidy_outputs.py [nbs/X.ipynb ...]      # every notebook under nbs/ when none is named

- warnings raised inside installed libraries (`.../site-packages/...:LINE: SomeWarning: ...` and the source line
  Python prints under it) go: they name a path on the machine that ran the notebook and are not the lesson's (e.g.
  fastai's `torch.jit.script` at import on torch >= 2.10). The package's own warnings stay.
- progress bars go: fastprogress redraws its bar with carriage returns, which a terminal overwrites but a committed
  output keeps frame by frame (`Epoch 1/1 : |███---| 33.33% ...`); each line keeps what a terminal would show last.
- saved ipywidgets state and widget outputs go: outside a live kernel a widget shows as `VBox(children=(...`; the
  notebooks show a screenshot of the panel beside the cell instead.
`tools/refresh_notebooks.sh` runs it after re-executing; `tests/test_docs.py` checks the result."""
import json, re, sys
from pathlib import Path

NBS = Path(__file__).resolve().parents[1]/'nbs'
LIB_WARNING = re.compile(r'^\S*site-packages/\S+:\d+: \w*Warning: ')
WIDGET = 'application/vnd.jupyter.widget-view+json'
PROGRESS = re.compile(r'^\s*(Epoch \d+/\d+ :)?\s*(\|[█-]*\|.*)?$')   # a bar, or the blank 'Epoch 1/1 :' it leaves

def tidy_stream(text:str) -> str:
    "`text` without the library warnings: each header line and the indented source lines under it."
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if LIB_WARNING.match(line): skipping = True; continue
        if skipping and line.startswith((' ', '\t')): continue
        skipping = False
        out.append(line)
    return ''.join(out)

def terminal(text:str) -> str:
    "`text` as a terminal shows it: of each line, what follows its last carriage return; lines left blank go."
    if '\r' not in text: return text
    lines = [l.rsplit('\r', 1)[-1] for l in text.split('\n')]
    end = '\n' if text.endswith('\n') else ''
    return '\n'.join(l for l in lines if l.strip() and not PROGRESS.match(l)) + end

def tidy_outputs(outputs:list) -> list:
    kept = []
    for o in outputs:
        if o.get('output_type') == 'stream' and o.get('name') == 'stderr':
            text = tidy_stream(''.join(o['text']))
            if not text.strip(): continue
            o = {**o, 'text': text.splitlines(keepends=True)}
        if o.get('output_type') == 'stream' and o.get('name') == 'stdout':
            text = terminal(''.join(o['text']))
            if not text.strip(): continue
            o = {**o, 'text': text.splitlines(keepends=True)}
        if WIDGET in o.get('data', {}): continue
        kept.append(o)
    return kept

def tidy(path:Path) -> bool:
    "Tidy the notebook at `path` in place; True if it changed."
    raw = path.read_text()
    nb = json.loads(raw)
    nb['metadata'].pop('widgets', None)
    for c in nb['cells']:
        if c['cell_type'] == 'code': c['outputs'] = tidy_outputs(c.get('outputs', []))
    new = json.dumps(nb, indent=1, ensure_ascii=False) + '\n'
    if new != raw: path.write_text(new)
    return new != raw

if __name__ == '__main__':
    for p in [Path(a) for a in sys.argv[1:]] or sorted(NBS.glob('*.ipynb')):
        if tidy(p): print(f"tidied {p}")
