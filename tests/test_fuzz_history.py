"""Fuzzing `RunHistory.load`: hundreds of damaged, foreign and hostile files, each refused with a `ValueError` that
names the file, quickly, and without ever unpickling. (test_tracker.py holds the hand-picked cases; this is the sweep.)"""
import io, json, os, pickle, struct, tempfile, threading, time, zipfile
from pathlib import Path
import numpy as np, pytest
from numpy.lib import format as npf
from finetune_lab.testing import fake_history
from finetune_lab.history import RunHistory, LAYER_COLS, STEP_COLS, EPOCH_COLS, ARRAYS

LIMIT = 10  # seconds: a load that takes longer counts as a hang (they all take ~10 ms)


def _saved_bytes(h):
    with tempfile.TemporaryDirectory() as d: return h.save(Path(d)/'h.npz').read_bytes()

# One small valid history (28 layers x 6 steps, ~8 KB), built at import so that cases can be laid out by its byte offsets.
GOOD = fake_history(steps_per_epoch=3, blocks=(1, 1, 1, 1), seed=1)
RAW = _saved_bytes(GOOD)
with np.load(io.BytesIO(RAW), allow_pickle=False) as _z: ARRS = {k: _z[k] for k in _z.files}
META = json.loads(str(ARRS['meta']))
with zipfile.ZipFile(io.BytesIO(RAW)) as _z: MEMBERS = _z.infolist()
N_STEPS, N_LAYERS = GOOD.change.shape
TABLES = dict(layers=LAYER_COLS, steps={**STEP_COLS, **{c: 'float' for c in META['tables']['steps'] if c not in STEP_COLS}},
              epochs=EPOCH_COLS)


# --- loading, with guards ---------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def never_unpickle(monkeypatch):
    "Any call of pickle.load/loads fails the test (load wraps errors in ValueError, so they are recorded, not just raised)."
    calls = []
    def refuse(*a, **k):
        calls.append(a)
        raise RuntimeError('RunHistory.load tried to unpickle')
    for name in ('load', 'loads'): monkeypatch.setattr(pickle, name, refuse)
    yield
    assert not calls, 'RunHistory.load unpickled something'


def _load(path, limit=LIMIT):
    "`RunHistory.load(path)` in a worker thread: a hang fails the test instead of stalling the suite."
    out = {}
    def work():
        try: out['h'] = RunHistory.load(path)
        except BaseException as e: out['e'] = e
    t = threading.Thread(target=work, daemon=True)
    t0 = time.perf_counter(); t.start(); t.join(limit)
    assert not t.is_alive(), f"RunHistory.load({path}) still running after {limit} s"
    out['secs'] = time.perf_counter() - t0
    if 'e' in out: raise out['e']
    return out['h']


def _rejects(path, limit=LIMIT):
    "Loading `path` raises a ValueError that names the file, says why, and says what can be loaded."
    with pytest.raises(ValueError) as e: _load(path, limit)
    msg, head = str(e.value), f"Cannot read {path} as a RunHistory: "
    assert msg.startswith(head), msg
    assert len(msg[len(head):].split('. Only files written by')[0]) > 3, msg   # a reason, not just the prefix
    assert 'RunHistory.save' in msg, msg
    return msg


def _rejects_or_same(path):
    "Damage in a part of the zip nobody reads (a timestamp, a declared size) may be harmless: then the data must be intact."
    try: h = _load(path)
    except ValueError as e:
        assert str(e).startswith(f"Cannot read {path} as a RunHistory: "), str(e)
        return 'rejected'
    assert h.equals(GOOD), 'damaged file loaded with different contents'
    return 'same'


def _write(tmp_path, data:bytes, name='h.npz'):
    p = tmp_path/name
    p.write_bytes(data)
    return p


# --- building damaged files -------------------------------------------------------------------------

def _npz(changes:dict)->bytes:
    "The valid file's arrays with `changes` (None drops an entry), written as a fresh npz."
    d = dict(ARRS)
    for k, v in changes.items():
        if v is None: d.pop(k, None)
        else: d[k] = v
    b = io.BytesIO(); np.savez_compressed(b, **d)
    return b.getvalue()

def _meta(drop=(), **kw)->dict:
    "A `changes` dict replacing the JSON meta with META updated by `kw`, without the keys in `drop`."
    m = {k: v for k, v in {**META, **kw}.items() if k not in drop}
    return dict(meta=np.array(json.dumps(m)))

def _tables(**kw)->dict: return _meta(tables={**META['tables'], **kw})

def _npy(shape, descr='<f4', data=b'', fortran=False, version=(1, 0))->bytes:
    "Raw .npy bytes: a header declaring `shape`/`descr`, followed by `data` (however little)."
    h = repr(dict(descr=descr, fortran_order=fortran, shape=shape)).encode()
    h += b' '*(-(len(h) + 11) % 64) + b'\n'
    return b'\x93NUMPY' + bytes(version) + struct.pack('<H', len(h)) + h + data

def _rezip(member:str, raw:bytes|None)->bytes:
    "The valid zip with `member`'s content replaced by `raw` (None: removed), all else as saved."
    b = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(RAW)) as zi, zipfile.ZipFile(b, 'w', zipfile.ZIP_DEFLATED) as zo:
        for i in zi.infolist():
            if i.filename == member:
                if raw is not None: zo.writestr(i.filename, raw)
            else: zo.writestr(i.filename, zi.read(i.filename))
    return b.getvalue()

def _patch(data:bytes, pos:int, fmt:str, value)->bytes:
    "`data` with the little-endian field `fmt` at `pos` set to `value`."
    b = bytearray(data); struct.pack_into('<'+fmt, b, pos, value)
    return bytes(b)

def _data_start(i:zipfile.ZipInfo)->int:
    "Offset of member `i`'s compressed bytes: after its 30-byte local header, name and extra field."
    n, e = struct.unpack_from('<HH', RAW, i.header_offset + 26)
    return i.header_offset + 30 + n + e

EOCD = RAW.rfind(b'PK\x05\x06')
CD = struct.unpack_from('<I', RAW, EOCD + 16)[0]

def _cd_entry(name:str)->int:
    "Offset of `name`'s entry in the central directory."
    pos = CD
    while RAW[pos:pos+4] == b'PK\x01\x02':
        n, e, c = struct.unpack_from('<HHH', RAW, pos + 28)
        if RAW[pos+46:pos+46+n].decode() == name: return pos
        pos += 46 + n + e + c
    raise KeyError(name)


# --- 1. truncated at many offsets: always refused -----------------------------------------------------

def _cuts():
    marks = {0, 1, 2, 3, 4, 29, 30, len(RAW)//2, CD, CD + 1, CD + 46, EOCD, EOCD + 4, EOCD + 12, EOCD + 16}
    for i in MEMBERS[::2]:
        s = _data_start(i)
        marks |= {i.header_offset, i.header_offset + 30, s, s + i.compress_size//2, s + i.compress_size}
    marks |= set(range(len(RAW) - 24, len(RAW)))                           # every cut into the end record
    marks |= set(np.random.default_rng(1).integers(5, len(RAW), 20).tolist())
    return sorted(m for m in marks if m < len(RAW))

@pytest.mark.parametrize('cut', _cuts())
def test_truncated(tmp_path, cut):
    _rejects(_write(tmp_path, RAW[:cut]))


# --- 2. flipped bytes --------------------------------------------------------------------------------

_rng = np.random.default_rng(2)
FLIPS = sorted(zip(_rng.choice(len(RAW), 60, replace=False).tolist(), _rng.integers(1, 256, 60).tolist()))

@pytest.mark.parametrize('pos,mask', FLIPS)
def test_random_flip_caught_or_harmless(tmp_path, pos, mask):
    "A flip in the data is caught (CRC-32 sees every single-byte error); one in an unread header field changes nothing."
    b = bytearray(RAW); b[pos] ^= mask
    _rejects_or_same(_write(tmp_path, bytes(b)))

@pytest.mark.parametrize('name', [i.filename for i in MEMBERS])
def test_flip_in_member_data(tmp_path, name):
    i = next(m for m in MEMBERS if m.filename == name)
    b = bytearray(RAW); b[_data_start(i) + i.compress_size//2] ^= 0x5A
    _rejects(_write(tmp_path, bytes(b)))

@pytest.mark.parametrize('name', [i.filename for i in MEMBERS][::3])
def test_flip_in_directory_name(tmp_path, name):
    "The central directory then disagrees with the member's own header (or names a member nobody asked for)."
    b = bytearray(RAW); b[_cd_entry(name) + 46] ^= 0x01
    _rejects(_write(tmp_path, bytes(b)))


# --- 3. zip directories that lie about sizes and places: refused or harmless, and fast ------------------

CHANGE_ENTRY = _cd_entry('change.npy')
ZIP_CLAIMS = {
    'member_claims_4GiB':          lambda: _patch(RAW, CHANGE_ENTRY + 24, 'I', 0xFFFFFFFE),
    'member_claims_zip64_size':    lambda: _patch(RAW, CHANGE_ENTRY + 24, 'I', 0xFFFFFFFF),
    'member_compressed_4GiB':      lambda: _patch(RAW, CHANGE_ENTRY + 20, 'I', 0xFFFFFFFE),
    'member_compressed_zero':      lambda: _patch(RAW, CHANGE_ENTRY + 20, 'I', 0),
    'member_size_zero':            lambda: _patch(RAW, CHANGE_ENTRY + 24, 'I', 0),
    'member_offset_past_end':      lambda: _patch(RAW, CHANGE_ENTRY + 42, 'I', 0xFFFFFFF0),
    'member_offset_zero':          lambda: _patch(RAW, CHANGE_ENTRY + 42, 'I', 0),
    'member_name_len_max':         lambda: _patch(RAW, CHANGE_ENTRY + 28, 'H', 0xFFFF),
    'member_extra_len_max':        lambda: _patch(RAW, CHANGE_ENTRY + 30, 'H', 0xFFFF),
    'member_unknown_compression':  lambda: _patch(RAW, CHANGE_ENTRY + 10, 'H', 99),
    'member_claims_stored':        lambda: _patch(RAW, CHANGE_ENTRY + 10, 'H', 0),
    'member_claims_encrypted':     lambda: _patch(RAW, CHANGE_ENTRY + 8, 'H', 1),
    'member_wrong_crc':            lambda: _patch(RAW, CHANGE_ENTRY + 16, 'I', 0),
    'dir_claims_65535_entries':    lambda: _patch(RAW, EOCD + 10, 'H', 0xFFFF),
    'dir_claims_no_entries':       lambda: _patch(_patch(RAW, EOCD + 8, 'H', 0), EOCD + 10, 'H', 0),
    'dir_size_4GiB':               lambda: _patch(RAW, EOCD + 12, 'I', 0xFFFFFFFE),
    'dir_offset_past_end':         lambda: _patch(RAW, EOCD + 16, 'I', 0xFFFFFFF0),
    'dir_offset_zero':             lambda: _patch(RAW, EOCD + 16, 'I', 0),
    'dir_comment_len_max':         lambda: _patch(RAW, EOCD + 20, 'H', 0xFFFF),
    'local_header_claims_4GiB':    lambda: _patch(RAW, MEMBERS[0].header_offset + 22, 'I', 0xFFFFFFFE),
}

@pytest.mark.parametrize('case', list(ZIP_CLAIMS))
def test_lying_zip_directory(tmp_path, case):
    _rejects_or_same(_write(tmp_path, ZIP_CLAIMS[case]()))


# --- 4. arrays whose .npy header lies: huge, negative, overflowing, hostile ------------------------------

NPY = {
    'shape_8TiB':           lambda m: _npy((2**40,), '<f8'),
    'shape_1GiB_no_data':   lambda m: _npy((2**28,), '<f4'),      # may be reserved, never filled: fails at EOF
    'shape_overflows':      lambda m: _npy((2**62, 4)),
    'shape_cube_overflows': lambda m: _npy((2**31, 2**31, 2**31)),
    'shape_negative':       lambda m: _npy((-1,)),
    'shape_float':          lambda m: _npy((6.5,)),
    'shape_huge_columns':   lambda m: _npy((N_STEPS, 10**12)),
    'huge_itemsize':        lambda m: _npy((), '<U999999999'),
    'unknown_dtype':        lambda m: _npy((N_STEPS, N_LAYERS), 'x9'),
    'object_dtype':         lambda m: _npy((N_STEPS, N_LAYERS), '|O', b'\x80\x04N.'),  # refused before any unpickling
    'fortran_not_bool':     lambda m: _npy((N_STEPS, N_LAYERS)).replace(b"'fortran_order': False", b"'fortran_order': 'x'  "),
    'header_is_code':       lambda m: b'\x93NUMPY\x01\x00' + struct.pack('<H', 64) + b"__import__('os').getcwd()".ljust(63) + b'\n',
    'header_not_dict':      lambda m: b'\x93NUMPY\x01\x00' + struct.pack('<H', 64) + b'[1, 2, 3]'.ljust(63) + b'\n',
    'header_too_long':      lambda m: b'\x93NUMPY\x02\x00' + struct.pack('<I', 20064) + b"{'descr': '<f4', 'fortran_order': False, 'shape': (6, 28), }".ljust(20063) + b'\n',
    'header_len_past_end':  lambda m: b'\x93NUMPY\x01\x00' + struct.pack('<H', 0xFFFF) + b'{',
    'npy_version_9':        lambda m: _npy((N_STEPS, N_LAYERS), version=(9, 9)),
    'bad_magic':            lambda m: b'\x93NUMPZ' + _npy((N_STEPS, N_LAYERS))[6:],
    'header_only':          lambda m: _npy((N_STEPS, N_LAYERS)),
    'half_the_data':        lambda m: _npy((N_STEPS, N_LAYERS), data=bytes(2*N_STEPS*N_LAYERS)),
    'empty_member':         lambda m: b'',
    'random_bytes':         lambda m: np.random.default_rng(3).bytes(300),
}

@pytest.mark.parametrize('member', ['change.npy', 'meta.npy', 'layers/name.npy', 'steps/loss.npy'])
@pytest.mark.parametrize('case', list(NPY))
def test_lying_npy_header(tmp_path, case, member):
    _rejects(_write(tmp_path, _rezip(member, NPY[case](member))))

def test_non_npy_member_is_named(tmp_path):
    msg = _rejects(_write(tmp_path, _rezip('steps/loss.npy', b'not npy data')))
    assert 'steps/loss' in msg and 'bytes' not in msg, msg

def test_member_removed(tmp_path):
    "The central directory no longer lists a member at all."
    for m in ('meta.npy', 'trainable.npy', 'epochs/time.npy'):
        _rejects(_write(tmp_path, _rezip(m, None), name=m.replace('/', '_') + '.npz'))


# --- 5. the JSON meta: foreign formats, other versions, wrong types ---------------------------------------

_deep = '{"a": ' * 100_000 + '1' + '}' * 100_000
META_BAD = {
    'version_3':           _meta(version=3),
    'version_0':           _meta(version=0),
    'version_negative':    _meta(version=-1),
    'version_1.5':         _meta(version=1.5),
    'version_null':        _meta(version=None),
    'version_list':        _meta(version=[1]),
    'version_missing':     _meta(drop=['version']),
    'version_huge_int':    dict(meta=np.array(json.dumps(META).replace('"version": 2', '"version": ' + '9'*5000))),
    'format_missing':      _meta(drop=['format']),
    'format_other':        _meta(format='fastai.Learner'),
    'format_case':         _meta(format='finetune_lab.runhistory'),
    'format_null':         _meta(format=None),
    'format_list':         _meta(format=['finetune_lab.RunHistory']),
    'interrupted_null':    _meta(interrupted=None),
    'interrupted_str':     _meta(interrupted='false'),
    'interrupted_missing': _meta(drop=['interrupted']),
    'config_str':          _meta(config='lr=0.01'),
    'config_null':         _meta(config=None),
    'config_missing':      _meta(drop=['config']),
    'tables_list':         _meta(tables=[['name']]),
    'tables_null':         _meta(tables=None),
    'table_missing':       _meta(tables={k: v for k, v in META['tables'].items() if k != 'epochs'}),
    'table_is_str':        _tables(layers='name,kind,group,part,n_params'),
    'table_lists_ints':    _tables(steps=[0, 1, 2]),
    'table_lists_null':    _tables(epochs=None),
    'table_lists_nested':  _tables(layers=[['name', 'kind']]),
    'table_unknown_col':   _tables(layers=META['tables']['layers'] + ['weight_decay']),
    'table_lacks_col':     _tables(layers=META['tables']['layers'][:-1]),
    'table_empty':         _tables(steps=[]),
    'meta_empty_str':      dict(meta=np.array('')),
    'meta_null':           dict(meta=np.array('null')),
    'meta_number':         dict(meta=np.array('1')),
    'meta_string':         dict(meta=np.array('"finetune_lab.RunHistory"')),
    'meta_bytes':          dict(meta=np.array(json.dumps(META).encode())),
    'meta_1d':             dict(meta=np.array([json.dumps(META)])),
    'meta_2d':             dict(meta=np.array([[json.dumps(META)]])),
    'meta_bool':           dict(meta=np.array(True)),
    'meta_deeply_nested':  dict(meta=np.array(_deep)),
    'meta_nul_bytes':      dict(meta=np.array('\x00' * 100)),
    'meta_bad_utf':        dict(meta=np.array(json.dumps(META)[:-1] + '\ud800}')),
}

@pytest.mark.parametrize('case', list(META_BAD))
def test_bad_meta(tmp_path, case):
    _rejects(_write(tmp_path, _npz(META_BAD[case])))


# --- 6. table columns of the wrong kind, shape or length ----------------------------------------------------

def _other_kind(kind, n):
    "An array of `n` values of the kind a `kind` column must not hold."
    return np.arange(n) if kind == 'str' else np.array(['x']*n)

COL_BAD = {}
for _t, _cols in TABLES.items():
    for _c, _k in _cols.items():
        _key, _a = f'{_t}/{_c}', ARRS[f'{_t}/{_c}']
        COL_BAD[f'{_key}:wrong_kind'] = {_key: _other_kind(_k, len(_a))}
        COL_BAD[f'{_key}:2d'] = {_key: np.stack([_a, _a], 1)}
        COL_BAD[f'{_key}:one_short'] = {_key: _a[:-1]}
        COL_BAD[f'{_key}:missing'] = {_key: None}
        if _k == 'int': COL_BAD[f'{_key}:nan'] = {_key: np.where(np.arange(len(_a)) == 0, np.nan, _a)}
        if _k == 'float': COL_BAD[f'{_key}:complex'] = {_key: _a + 1j}

@pytest.mark.parametrize('case', list(COL_BAD))
def test_bad_column(tmp_path, case):
    _rejects(_write(tmp_path, _npz(COL_BAD[case])))


# --- 7. the [steps x layers] arrays -------------------------------------------------------------------------

ARR_BAD = {}
for _k in ARRAYS:
    _a = ARRS[_k]
    ARR_BAD.update({
        f'{_k}:missing':     {_k: None},
        f'{_k}:transposed':  {_k: _a.T},
        f'{_k}:1d':          {_k: _a.ravel()},
        f'{_k}:3d':          {_k: _a[None]},
        f'{_k}:0d':          {_k: _a.ravel()[:1].reshape(())},
        f'{_k}:row_short':   {_k: _a[:-1]},
        f'{_k}:extra_layer': {_k: np.concatenate([_a, _a[:, :1]], 1)},
        f'{_k}:str':         {_k: _a.astype(str)},
        f'{_k}:complex':     {_k: _a.astype(complex)},
        f'{_k}:datetime':    {_k: np.zeros(_a.shape, 'M8[s]')},
        f'{_k}:structured':  {_k: np.zeros(_a.shape, [('a', 'f4')])},
    })
    if _k == 'trainable': ARR_BAD[f'{_k}:float'] = {_k: _a.astype(np.float32)}
ARR_BAD.update({
    'steps_one_more_than_arrays': {f'steps/{c}': np.concatenate([ARRS[f'steps/{c}'], ARRS[f'steps/{c}'][-1:]]) for c in META['tables']['steps']},
    'layers_one_less_than_arrays': {f'layers/{c}': ARRS[f'layers/{c}'][:-1] for c in META['tables']['layers']},
    'no_steps_but_arrays': {**{f'steps/{c}': ARRS[f'steps/{c}'][:0] for c in META['tables']['steps']}},
    'layer_group_past_last': {'layers/group': ARRS['layers/group'] + 5},
    'layer_group_negative': {'layers/group': ARRS['layers/group'] - 1},
    'layer_kind_unknown': {'layers/kind': np.where(np.arange(N_LAYERS) == 0, 'attention', ARRS['layers/kind'])},
    'layer_part_unknown': {'layers/part': np.where(np.arange(N_LAYERS) == 0, 'neck', ARRS['layers/part'])},
    'lr_columns_not_0_based': {**_tables(steps=[c.replace('lr_0', 'lr_3') for c in META['tables']['steps']]),
                               'steps/lr_3': ARRS['steps/lr_0']},
})

@pytest.mark.parametrize('case', list(ARR_BAD))
def test_bad_array(tmp_path, case):
    _rejects(_write(tmp_path, _npz(ARR_BAD[case])))


# --- 8. not a history at all ----------------------------------------------------------------------------------

def _zip(**members)->bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, 'w') as z:
        for k, v in members.items(): z.writestr(k, v)
    return b.getvalue()

def _npy_file(a)->bytes:
    b = io.BytesIO(); np.save(b, a); return b.getvalue()

FOREIGN = {
    'empty_file':       lambda: b'',
    'one_byte':         lambda: b'P',
    'zip_magic_only':   lambda: b'PK\x03\x04',
    'end_record_only':  lambda: RAW[EOCD:],
    'text':             lambda: b'step,loss\n0,0.7\n1,0.6\n',
    'json_meta':        lambda: json.dumps(META).encode(),
    'html_error_page':  lambda: b'<!DOCTYPE html><html><body>404 Not Found</body></html>',
    'gzip':             lambda: b'\x1f\x8b\x08\x00' + bytes(40),
    'png':              lambda: b'\x89PNG\r\n\x1a\n' + bytes(100),
    'plain_npy':        lambda: _npy_file(ARRS['change']),
    'npy_of_meta':      lambda: _npy_file(ARRS['meta']),
    'empty_zip':        lambda: _zip(),
    'zip_of_text':      lambda: _zip(**{'meta.npy': json.dumps(META)}),
    'zip_meta_only':    lambda: _npz({k: None for k in ARRS if k != 'meta'}),
    'zip_arrays_no_meta': lambda: _npz(dict(meta=None)),
    'zip_nested':       lambda: _zip(**{'h.npz': RAW}),
    'zip_in_subfolder': lambda: _zip(**{f'run/{i.filename}': zipfile.ZipFile(io.BytesIO(RAW)).read(i) for i in MEMBERS}),
    'two_histories':    lambda: RAW + RAW[:-1],   # the end record now points at the wrong copy
    'pickle_protocol_0': lambda: b"(dp0\nS'format'\np1\nS'finetune_lab.RunHistory'\np2\ns.",
    'pickle_protocol_5': lambda: b'\x80\x05\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.',
    **{f'random_{n}_bytes': (lambda n=n: np.random.default_rng(n).bytes(n)) for n in (7, 64, 1000, 20_000)},
    **{f'random_after_zip_magic_{n}': (lambda n=n: b'PK\x03\x04' + np.random.default_rng(n).bytes(n)) for n in (100, 5000)},
}

@pytest.mark.parametrize('case', list(FOREIGN))
def test_not_a_history(tmp_path, case):
    _rejects(_write(tmp_path, FOREIGN[case]()))

def test_a_directory(tmp_path):
    (tmp_path/'run.npz').mkdir()
    _rejects(tmp_path/'run.npz')

def test_sparse_8GiB_file_fails_fast(tmp_path):
    "A huge file (sparse: no disk used) is refused from its end record, without being read through."
    p = tmp_path/'big.npz'
    with open(p, 'wb') as f: f.write(b'PK\x03\x04'); f.truncate(2**33)
    _rejects(p, limit=5)

@pytest.mark.skipif(not Path('/dev/zero').exists(), reason='needs /dev/zero')
def test_endless_device():
    _rejects(Path('/dev/zero'), limit=5)

@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs named pipes')
def test_named_pipe_does_not_hang(tmp_path):
    fifo = tmp_path/'h.npz'; os.mkfifo(fifo)
    done = []
    t = threading.Thread(target=lambda: done.append(pytest.raises(ValueError, RunHistory.load, fifo)), daemon=True)
    t.start(); t.join(2)
    hung = t.is_alive()
    if hung: os.close(os.open(fifo, os.O_WRONLY)); t.join(5)   # release the blocked reader with an empty write end
    assert not hung, 'RunHistory.load blocked on a named pipe'


# --- 9. pickles: refused without ever being unpickled ------------------------------------------------------------

class _Plant:
    "Unpickling this creates a file: proof that something was unpickled."
    def __init__(self, path): self.path = str(path)
    def __reduce__(self): return (open, (self.path, 'w'))

def _pickled_npy(flag)->bytes:
    b = io.BytesIO(); np.save(b, np.array([_Plant(flag)], dtype=object), allow_pickle=True)
    return b.getvalue()

@pytest.mark.parametrize('where', ['change.npy', 'meta.npy', 'layers/kind.npy', 'plain_npy', 'raw_pickle'])
def test_hostile_pickle_never_runs(tmp_path, where):
    flag = tmp_path/'unpickled'
    if where == 'plain_npy': data = _pickled_npy(flag)
    elif where == 'raw_pickle': data = pickle.dumps(_Plant(flag))
    else: data = _rezip(where, _pickled_npy(flag))
    _rejects(_write(tmp_path, data))
    assert not flag.exists()

def test_object_column_from_npz(tmp_path):
    "An object array written by numpy itself (allow_pickle on the writer's side) is refused by the reader."
    _rejects(_write(tmp_path, _npz({'steps/phase': np.array(list(ARRS['steps/phase']), dtype=object)})))

def test_load_asks_numpy_for_no_pickle(tmp_path, monkeypatch):
    "Every array is read by numpy's own `read_array`, told not to unpickle (and `np.load`, which could, is never used)."
    seen, real = [], npf.read_array
    monkeypatch.setattr(npf, 'read_array', lambda *a, **k: seen.append(k) or real(*a, **k))
    monkeypatch.setattr(np, 'load', lambda *a, **k: pytest.fail('RunHistory.load called np.load'))
    assert RunHistory.load(_write(tmp_path, RAW)).equals(GOOD)
    assert len(seen) == len(ARRS) and all(k.get('allow_pickle') is False for k in seen)


# --- 10. controls: what must still load ----------------------------------------------------------------------

def test_valid_file_loads(tmp_path):
    assert _load(_write(tmp_path, RAW)).equals(GOOD)

def test_rewritten_arrays_load(tmp_path):
    "The fuzz builders themselves make loadable files when they change nothing."
    assert _load(_write(tmp_path, _npz({}))).equals(GOOD)
    assert _load(_write(tmp_path, _rezip('change.npy', _npy_file(ARRS['change'])), 'b.npz')).equals(GOOD)

def test_plausible_oddities_load(tmp_path):
    "A diverged run (NaN/inf change, NaN loss) and an extra column are real possibilities, not damage."
    ch = ARRS['change'].copy(); ch[-1] = np.inf; ch[-2, :3] = np.nan
    loss = ARRS['steps/loss'].copy(); loss[-1] = np.nan
    h = _load(_write(tmp_path, _npz({'change': ch, 'steps/loss': loss, 'steps/note': np.array(['x']*N_STEPS),
                                     **_tables(steps=META['tables']['steps'] + ['note'])})))
    assert np.isinf(h.change[-1]).all() and np.isnan(h.change[-2, :3]).all() and np.isnan(h.steps.loss.iloc[-1])
    assert h.steps.note.tolist() == ['x']*N_STEPS

def test_interrupted_before_first_step_round_trips(tmp_path):
    h = fake_history(steps_per_epoch=3, blocks=(1, 1, 1, 1), interrupt_at=0.0)
    g = _load(h.save(tmp_path/'empty.npz'))
    assert g.equals(h) and g.interrupted and g.change.shape == (0, N_LAYERS)


# --- 11. well-formed files holding values no run can produce -----------------------------------------------

def _bug(changes, why):
    "A case `load` must refuse; `why` says what makes it nonsense."
    return pytest.param(changes)

_seq = np.arange(N_STEPS)
SEMANTIC_BUGS = {
    # a duplicated column loads as a 2-column 'loss'; saving that history writes a file load then refuses
    'column_listed_twice': _bug(_tables(steps=META['tables']['steps'] + ['loss']),
                                "_read_table should refuse duplicate column names (and _norm_table duplicated df.columns)"),
    # uint64 passes the 'int' kind check and astype(int64) wraps 2**64-1 to -1
    'uint64_wraps_negative': _bug({'layers/n_params': np.full(N_LAYERS, 2**64 - 1, np.uint64)},
                                  "_norm_table should refuse unsigned values above int64's max instead of wrapping"),
    'version_true': _bug(_meta(version=True), "_read_meta compares version with != so JSON true == 1 passes; check type(v) is int"),
    'n_params_negative': _bug({'layers/n_params': -ARRS['layers/n_params']}, "a parameter count is never < 0"),
    'change_negative': _bug({'change': -ARRS['change'] - 1}, "change is a ratio of norms, never < 0"),
    'update_negative': _bug({'update': -ARRS['update'] - 1}, "update is a ratio of norms, never < 0"),
    'bn_stats_negative': _bug({'bn_stats': -np.nan_to_num(ARRS['bn_stats']) - 1}, "bn_stats is a ratio of norms, never < 0"),
    'steps_repeat': _bug({'steps/step': np.zeros(N_STEPS, int)}, "recorded step numbers strictly increase"),
    'steps_backwards': _bug({'steps/step': _seq[::-1].copy()}, "recorded step numbers strictly increase"),
    'steps_negative': _bug({'steps/step': _seq - 10}, "step numbers start at 0"),
    'fit_negative': _bug({'steps/fit': ARRS['steps/fit'] - 5}, "fit numbers start at 0 and never decrease"),
    'phase_unknown': _bug({'steps/phase': np.array(['banana']*N_STEPS)}, "phases are 'unfrozen', 'frozen' or 'frozen_to k'"),
    'layer_names_repeat': _bug({'layers/name': np.array(['0.0']*N_LAYERS)}, "layer names are module names, unique"),
    'fit_change_negative': _bug({'fit_change': -np.nan_to_num(ARRS['fit_change']) - 1}, "fit_change is a ratio of norms, never < 0"),
    'answers_unpaired': _bug({'valid/targets': np.array([0, 1, 1]), 'valid/preds': np.array([0, 1])}, "one answer per validation photo"),
    'answers_negative': _bug({'valid/targets': np.array([0, -1]), 'valid/preds': np.array([0, 1])}, "class indices are never < 0"),
    'answers_float': _bug({'valid/targets': np.array([0., 1.]), 'valid/preds': np.array([0., 1.])}, "answers are class indices"),
    'answers_2d': _bug({'valid/targets': np.zeros((2, 2), int), 'valid/preds': np.zeros((2, 2), int)}, "answers are 1-d, one per photo"),
}

@pytest.mark.parametrize('changes', list(SEMANTIC_BUGS.values()), ids=list(SEMANTIC_BUGS))
def test_nonsense_values_refused(tmp_path, changes):
    _rejects(_write(tmp_path, _npz(changes)))

def test_duplicate_column_breaks_the_next_save(tmp_path):
    "Why `column_listed_twice` matters: what load accepts today, save turns into a file load refuses."
    try: h = RunHistory.load(_write(tmp_path, _npz(_tables(steps=META['tables']['steps'] + ['loss']))))
    except ValueError: return  # fixed: refused at the door
    with pytest.raises(ValueError, match="column 'steps/loss' has shape"): RunHistory.load(h.save(tmp_path/'again.npz'))


# --- 11. `show`: everything `load` accepts is drawn; everything else is refused in one line ------------------------

import random
from finetune_lab import cli as _cli


def _show(capsys, path, out):
    code = _cli.main(['show', str(path), '--out', str(out), '--quiet'])
    o = capsys.readouterr()
    return code, o.out, o.err


def _flipped(seed):
    rng, b = random.Random(seed), bytearray(RAW)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(b)); b[i] ^= 1 << rng.randrange(8)
    return bytes(b)

def _odd(kind):
    "Files `load` accepts though no clean run writes them: a diverged run, a run stopped before its first step, no epochs."
    if kind == 'diverged':
        ch = ARRS['change'].copy(); ch[-1] = np.inf; ch[-2, :3] = np.nan
        loss = ARRS['steps/loss'].copy(); loss[-1] = np.nan
        return _npz({'change': ch, 'steps/loss': loss})
    if kind == 'no_steps': return _saved_bytes(fake_history(steps_per_epoch=3, blocks=(1, 1, 1, 1), interrupt_at=0.0))
    if kind == 'no_epochs': return _saved_bytes(fake_history(steps_per_epoch=3, blocks=(1, 1, 1, 1), interrupt_at=0.3))
    if kind == 'all_zero': return _npz({k: np.zeros_like(ARRS[k]) for k in ('change', 'update', 'bn_stats')})

SHOW_CASES = [('flip', s) for s in range(30)] + [('odd', k) for k in ('diverged', 'no_steps', 'no_epochs', 'all_zero')] + \
             [('foreign', k) for k in list(FOREIGN)[:6]]

@pytest.mark.parametrize('kind,case', SHOW_CASES, ids=[f'{k}-{c}' for k, c in SHOW_CASES])
def test_show_draws_what_load_accepts_and_refuses_the_rest_in_one_line(tmp_path, capsys, kind, case):
    data = _flipped(case) if kind == 'flip' else _odd(case) if kind == 'odd' else FOREIGN[case]()
    p = _write(tmp_path, data)
    try: _load(p); accepted = True
    except ValueError: accepted = False
    code, out, err = _show(capsys, p, tmp_path/'out')
    assert 'Traceback' not in out + err
    if accepted:
        assert code == 0, err
        assert (tmp_path/'out'/'h.png').read_bytes()[:4] == b'\x89PNG' and (tmp_path/'out'/'explain.txt').stat().st_size > 10
    else:
        assert code == 2 and len(err.strip().splitlines()) == 1 and f'Cannot read {p} as a RunHistory' in err, err
        assert not (tmp_path/'out').exists() or not list((tmp_path/'out').iterdir())


def test_show_cases_cover_both_outcomes(tmp_path):
    ok = 0
    for kind, case in SHOW_CASES:
        p = _write(tmp_path, _flipped(case) if kind == 'flip' else _odd(case) if kind == 'odd' else FOREIGN[case](), f'{kind}-{case}.npz')
        try: _load(p); ok += 1
        except ValueError: pass
    assert 5 <= ok < len(SHOW_CASES)   # the sweep draws some files and refuses others
