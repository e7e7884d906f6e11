"""Robustness: runs broken off at a random batch, image folders full of bad files, Configs given wrong types.
(test_data.py and test_experiment.py hold the basic cases; this adds the mixtures, the sweeps and the trials.)"""
import dataclasses, io, math, random, struct, threading, warnings, zlib
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image, features
from fastai.callback.core import Callback
from finetune_lab.data import pets_dls, draw_pet, is_cat
from finetune_lab.experiment import Config, run
from finetune_lab.history import RunHistory
from finetune_lab.tracker import WeightChangeTracker


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    "Tiny models gain nothing from more threads; leave the other cores to other work, then restore."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- interrupted at a random batch ----------------------------------------------------------------------

TINY = Config(source='synthetic', arch='efficientnet_lite0', n_images=24, size=32, bs=8, freeze_epochs=1, epochs=1)
STRATS = ('fine_tune', 'gradual', 'full')   # two fits, three fits, one fit


class InterruptAt(Callback):
    "At `event` of training batch `k` (counted across fits), raise KeyboardInterrupt, or set `stop` when given."
    def __init__(self, k:int, event:str, stop:threading.Event|None=None, after_tracker:bool=False):
        self.k, self.event, self.stop, self.seen = k, event, stop, -1
        self.order = WeightChangeTracker.order + (1 if after_tracker else -1)
    def before_batch(self):
        if self.training: self.seen += 1
        self._at('before_batch')
    def after_pred(self): self._at('after_pred')
    def after_loss(self): self._at('after_loss')
    def after_backward(self): self._at('after_backward')
    def after_step(self): self._at('after_step')
    def after_batch(self): self._at('after_batch')
    def _at(self, event):
        if event != self.event or not self.training or self.seen != self.k: return
        if self.stop is None: raise KeyboardInterrupt
        self.stop.set()


CTRL_C_AT = ['before_batch', 'after_pred', 'after_loss', 'after_backward', 'after_step', 'after_batch']
STOP_AT = ['before_batch', 'after_loss', 'after_batch']

def _trials(n=20, seed=8):
    "(strategy, how, event, after_tracker, where, then_whole): `where` in [0, 1) picks the batch once the run's length is known."
    rng, out = random.Random(seed), []
    for i in range(n):
        how = 'stop' if i % 4 == 3 else 'ctrl_c'
        events = STOP_AT if how == 'stop' else CTRL_C_AT
        out.append((STRATS[i % 3], how, events[(i//4 if how == 'stop' else i - i//4) % len(events)], rng.random() < .3,
                    round(rng.random(), 3), i % 4 == 1))
    return out


@pytest.fixture(scope='module')
def clean():
    "Uninterrupted runs, one per strategy, made on first use."
    cache = {}
    def get(strategy):
        if strategy not in cache: cache[strategy] = run(TINY.replace(strategy=strategy), progress=False)
        return cache[strategy]
    return get


def _assert_same_run(h, base, n_rows, n_epochs):
    "`h` is exactly the first `n_rows` recorded steps and `n_epochs` finished epochs of `base` (epoch times aside)."
    pd.testing.assert_frame_equal(h.layers, base.layers)
    pd.testing.assert_frame_equal(h.steps, base.steps.iloc[:n_rows].reset_index(drop=True))
    for k in ('change', 'update', 'trainable', 'bn_stats'):
        np.testing.assert_array_equal(getattr(h, k), getattr(base, k)[:n_rows], err_msg=k)
    drop = lambda e: e.drop(columns='time').reset_index(drop=True)
    pd.testing.assert_frame_equal(drop(h.epochs), drop(base.epochs.iloc[:n_epochs]))
    assert h.config == base.config


FAST_TRIALS = (0, 3)   # fine_tune interrupted by Ctrl-C and by Stop (one clean run to compare with); the rest are slow tests

@pytest.mark.parametrize('strategy,how,event,after_tracker,where,then_whole',
                         [pytest.param(*t, marks=[] if i in FAST_TRIALS else [pytest.mark.slow],
                                       id=f'{i:02d}-{t[0]}-{t[1]}-{t[2]}{"+" if t[3] else ""}-{t[4]}{"-then_whole" if t[5] else ""}')
                          for i, t in enumerate(_trials())])
def test_interrupted_run(clean, tmp_path, strategy, how, event, after_tracker, where, then_whole):
    base = clean(strategy)
    cfg, n = TINY.replace(strategy=strategy), len(base.steps)
    k = int(where*n)
    stop = threading.Event() if how == 'stop' else None
    h = run(cfg, cbs=[InterruptAt(k, event, stop, after_tracker)], stop=stop, progress=False)  # returns: Ctrl-C is caught
    # rows recorded: batches before k, plus batch k itself if it got past the tracker (a Stop only refuses the *next* batch)
    rows = k + (how == 'stop' or (event == 'after_batch' and after_tracker))
    assert h.interrupted and not base.interrupted
    assert len(h.steps) == rows and h.steps.step.tolist() == list(range(rows))
    for a in (h.change, h.update, h.trainable, h.bn_stats): assert a.shape == (len(h.steps), len(h.layers))
    # finished epochs: those whose every batch came before batch k (the epoch of batch k never reached after_epoch)
    ep = base.steps.groupby('epoch').step.max()
    _assert_same_run(h, base, rows, int((ep < k).sum()))
    assert RunHistory.load(h.save(tmp_path/'partial.npz')).equals(h)   # a partial history survives the disk too
    # The trials run one after another in this process, on the same cached data and weights, so each one's exact match
    # with a clean run also proves the interruption before it left nothing behind. Every 4th also runs a whole one now.
    if not then_whole: return
    again = run(cfg, progress=False)
    assert not again.interrupted
    _assert_same_run(again, base, n, len(base.epochs))


def test_trials_cover_every_kind():
    t = _trials()
    assert len(t) >= 20 and {s for s, *_ in t} == set(STRATS) == {s for s, *_, whole in t if whole}
    fast = [t[i] for i in FAST_TRIALS]   # what a plain `python -m pytest` runs
    assert {h for _, h, *_ in fast} == {'ctrl_c', 'stop'}
    assert {e for _, h, e, *_ in t if h == 'ctrl_c'} == set(CTRL_C_AT) and {e for _, h, e, *_ in t if h == 'stop'} == set(STOP_AT)
    assert {a for *_, a, _, _ in t} == {True, False}


@pytest.mark.slow
def test_stop_set_before_the_run(clean):
    "A Stop pressed before Run: nothing trains, the (empty) history is still consistent, and the next run is whole."
    stop = threading.Event(); stop.set()
    h = run(TINY, stop=stop, progress=False)
    assert h.interrupted and len(h.steps) == 0 and h.change.shape == (0, len(h.layers))
    again, base = run(TINY, progress=False), clean('fine_tune')
    assert not again.interrupted
    _assert_same_run(again, base, len(base.steps), len(base.epochs))


# --- a Pets folder with bad files mixed in ---------------------------------------------------------------------

def _jpeg(im, **kw):
    b = io.BytesIO(); im.save(b, 'JPEG', quality=90, **kw); return b.getvalue()

def _png(im):
    b = io.BytesIO(); im.save(b, 'PNG'); return b.getvalue()

def _png_bomb(im):
    "A PNG whose header claims 100000 x 100000 pixels (10^10): Pillow must refuse it before allocating anything."
    b = bytearray(_png(im))
    b[16:24] = struct.pack('>II', 100_000, 100_000)
    b[29:33] = struct.pack('>I', zlib.crc32(bytes(b[12:29])))
    return bytes(b)

def _uint16(im): return Image.fromarray(np.asarray(im.convert('L')).astype(np.uint16)*257)

GOOD = ['Abyssinian_1.jpg', 'Abyssinian_2.jpg', 'Abyssinian_3.jpg', 'beagle_1.jpg', 'beagle_2.jpg', 'beagle_3.jpg']
# readable, but not 8-bit RGB JPEG: each must arrive as RGB
CONVERT = {
    'Bengal_1.jpg':            lambda im: _jpeg(im.convert('L')),
    'Birman_1.jpg':            lambda im: _jpeg(im.convert('CMYK')),
    'Bombay_1.png':            lambda im: _png(im.convert('RGBA')),
    'boxer_1.png':             lambda im: _png(im.convert('P')),
    'chihuahua_1.png':         lambda im: _png(im.convert('LA')),
    'British_Shorthair_1.png': lambda im: _png(_uint16(im)),
    'english_setter_1.bmp':    lambda im: (b := io.BytesIO(), im.convert('1').save(b, 'BMP'), b.getvalue())[-1],
    'german_shorthaired_1.gif': lambda im: (b := io.BytesIO(), im.save(b, 'GIF', save_all=True, append_images=[im.rotate(9)]), b.getvalue())[-1],
    'Egyptian_Mau_1.tif':      lambda im: (b := io.BytesIO(), im.convert('CMYK').save(b, 'TIFF'), b.getvalue())[-1],
    'japanese_chin_1.jpg':     lambda im: _png(im),                 # PNG bytes behind a .jpg name
    'Maine_Coon_1.JPG':        lambda im: _jpeg(im),                # upper-case extension
}
if features.check('webp'): CONVERT['havanese_1.webp'] = lambda im: (b := io.BytesIO(), im.save(b, 'WEBP'), b.getvalue())[-1]
# unreadable: each must be skipped and counted
BAD = {
    'Persian_1.jpg':            lambda im: b'',
    'keeshond_1.jpg':           lambda im: b'<html><body>404 Not Found</body></html>',
    'leonberger_1.jpg':         lambda im: (j := _jpeg(im))[:len(j)//2],
    'Ragdoll_1.jpg':            lambda im: _jpeg(im)[:300],
    'miniature_pinscher_1.png': lambda im: (p := _png(im))[:len(p)//2],
    'newfoundland_1.png':       lambda im: (p := bytearray(_png(im)), p.__setitem__(len(p)//2, p[len(p)//2] ^ 0xFF), bytes(p))[-1],
    'Russian_Blue_1.png':       _png_bomb,
}
# not images by their extension (or hidden): ignored, and not counted as skipped
IGNORED = {'notes.txt': b'cats are upper-case', 'Abyssinian_1.mat': b'\x00'*64, '._Abyssinian_1.jpg': b'\x00\x05\x16\x07'}


def _write_folder(d:Path, files:dict)->Path:
    d.mkdir()
    for i, (name, make) in enumerate(files.items()):
        data = make(draw_pet(is_cat(name), seed=i, size=48)) if callable(make) else make
        (d/name).write_bytes(data)
    return d

def _messy_folder(d:Path)->Path:
    return _write_folder(d, {**{n: _jpeg for n in GOOD}, **CONVERT, **BAD, **IGNORED})

def _skip_warnings(f, *a, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        res = f(*a, **kw)
    return res, [str(x.message) for x in w if 'could not be read' in str(x.message)]

def _items(dls): return sorted(f.name for f in list(dls.train_ds.items) + list(dls.valid_ds.items))


def test_messy_folder(tmp_path):
    d = _messy_folder(tmp_path/'pets')
    dls, msgs = _skip_warnings(pets_dls, d, size=32, bs=4, valid_pct=0.2, verbose=False)
    assert msgs == [f"Skipped {len(BAD)} file(s) in {d} that could not be read as images."]
    assert dls.n_skipped == len(BAD)
    assert _items(dls) == sorted(GOOD + list(CONVERT))   # each cached copy keeps its original's name, extension included
    for ds in (dls.train_ds, dls.valid_ds):                 # every image decodes as RGB, with its file name's label
        for f, (img, y) in zip(ds.items, ds):
            assert img.mode == 'RGB' and bool(dls.vocab[int(y)]) == is_cat(f.name), f.name
    for dl in (dls.train, dls.valid):
        x, _ = dl.one_batch()
        assert x.shape[1:] == (3, 32, 32)


def test_messy_folder_converts_faithfully(tmp_path):
    "Grey stays grey (R = G = B); a transparent or a palette image keeps its picture (4x4 block means, past JPEG noise)."
    d = _messy_folder(tmp_path/'pets')
    dls, _ = _skip_warnings(pets_dls, d, size=48, bs=4, verbose=False)
    cached = {f.name: np.asarray(Image.open(f)).astype(float) for f in list(dls.train_ds.items) + list(dls.valid_ds.items)}
    grey = cached['Bengal_1.jpg']
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 2 and np.abs(grey[..., 1] - grey[..., 2]).max() <= 2
    blocks = lambda a: a.reshape(12, 4, 12, 4, 3).mean((1, 3))
    for name in ('Bombay_1.png', 'boxer_1.png'):
        src = np.asarray(draw_pet(is_cat(name), seed=len(GOOD) + list(CONVERT).index(name), size=48)).astype(float)
        assert np.abs(blocks(cached[name]) - blocks(src)).mean() < 6, name   # another pet: > 50


def test_messy_folder_again_same_count(tmp_path):
    "The second time (resized copies cached) the same files are skipped, counted and warned about once."
    d = _messy_folder(tmp_path/'pets')
    first, _ = _skip_warnings(pets_dls, d, size=32, bs=4, verbose=False)
    again, msgs = _skip_warnings(pets_dls, d, size=32, bs=4, verbose=False)
    assert len(msgs) == 1 and f'Skipped {len(BAD)} file' in msgs[0] and again.n_skipped == len(BAD)
    assert _items(again) == _items(first)


def test_all_of_one_class_unreadable(tmp_path):
    "If every dog is damaged, the warning comes first, then the one-class error, about what is left."
    d = _write_folder(tmp_path/'pets', {**{n: _jpeg for n in GOOD if is_cat(n)}, 'beagle_1.jpg': lambda im: b'',
                                        'boxer_1.jpg': lambda im: _jpeg(im)[:200]})
    with pytest.warns(UserWarning, match='Skipped 2 file'), pytest.raises(ValueError, match='All 3 images .* are cats'):
        pets_dls(d, size=32, verbose=False)


# --- Config: wrong types for every field ---------------------------------------------------------------------

WRONG = {'None': None, 'True': True, 'str': '8', 'list': [8], 'nan': math.nan, 'inf': math.inf, 'bytes': b'8'}

def _is_allowed(f, v):
    "The few WRONG values some fields do accept."
    return (v is None and f.metadata.get('none')) or (isinstance(v, bool) and (f.default in (True, False) or f.name == 'keep_bn_stats'))

def _type_cases():
    for f in dataclasses.fields(Config):
        for k, v in WRONG.items():
            if _is_allowed(f, v): continue
            yield pytest.param(f.name, v, id=f'{f.name}-{k}')

@pytest.mark.parametrize('name,value', list(_type_cases()))
def test_config_rejects_wrong_type(name, value):
    with pytest.raises(ValueError, match=rf"^Config\.{name}=.* is not allowed: use "): Config(**{name: value})

def test_type_sweep_covers_every_field():
    names = {p.values[0] for p in _type_cases()}
    assert names == {f.name for f in dataclasses.fields(Config)}

@pytest.mark.parametrize('name,value', [('bs', '8'), ('epochs', 2.0), ('ps', None), ('train_bn', 'False'), ('seed', 1.5)])
def test_replace_and_from_dict_validate_too(name, value):
    "The other two ways a Config is made (a panel's change, a saved history's config) check just the same."
    with pytest.raises(ValueError, match=rf"^Config\.{name}="): TINY.replace(**{name: value})
    with pytest.raises(ValueError, match=rf"^Config\.{name}="): Config.from_dict({**TINY.asdict(), name: value})
