import csv, warnings
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from finetune_lab.data import pets_dls, is_cat, synthetic_pets

def _manifest(folder):
    with open(folder/'MANIFEST.tsv') as f: return {r['filename']: r['species'] for r in csv.DictReader(f, delimiter='\t')}

@pytest.mark.parametrize('name', ['pets_sample', 'pets_more'])
def test_labels_match_manifest(name, request):
    folder = request.getfixturevalue(name)
    species = _manifest(folder)
    dls = pets_dls(folder, size=32, n_images=None if name == 'pets_sample' else 300, verbose=False)
    items = list(dls.train_ds.items) + list(dls.valid_ds.items)
    labels = [dls.vocab[int(y)] for _, y in list(dls.train_ds) + list(dls.valid_ds)] if len(items) < 250 else None
    assert len(items) == (len(species) if name == 'pets_sample' else 300)
    for f in items:
        assert is_cat(f.name) == (species[f.name] == 'cat'), f.name
    if labels is not None:  # the labels fastai actually built, not just our function
        assert [bool(l) for l in labels] == [species[f.name] == 'cat' for f in items]

def test_stratified_subset_sizes(pets_sample):
    dls = pets_dls(pets_sample, size=32, n_images=50, verbose=False)
    items = list(dls.train_ds.items) + list(dls.valid_ds.items)
    assert len(items) == 50 and len(dls.valid_ds) == 10
    species = _manifest(pets_sample)
    share = sum(v == 'cat' for v in species.values())/len(species)
    assert sum(is_cat(f.name) for f in items) == round(50*share)
    again = pets_dls(pets_sample, size=32, n_images=50, verbose=False)
    assert [f.name for f in again.valid_ds.items] == [f.name for f in dls.valid_ds.items]

def test_synthetic_deterministic_with_both_classes(tmp_path, monkeypatch):
    monkeypatch.setenv('FINETUNE_LAB_CACHE', str(tmp_path/'a'))
    a = synthetic_pets(20, seed=3)
    monkeypatch.setenv('FINETUNE_LAB_CACHE', str(tmp_path/'b'))
    b = synthetic_pets(20, seed=3)
    fa, fb = sorted(a.glob('*.jpg')), sorted(b.glob('*.jpg'))
    assert [f.name for f in fa] == [f.name for f in fb] and len(fa) == 20
    assert all(np.array_equal(np.asarray(Image.open(x)), np.asarray(Image.open(y))) for x, y in zip(fa, fb))
    dls = pets_dls('synthetic', size=32, n_images=20, seed=3, verbose=False)
    ys = [int(y) for _, y in list(dls.train_ds) + list(dls.valid_ds)]
    assert set(ys) == {0, 1}

def _write_bad_folder(d, src):
    d.mkdir()
    imgs = sorted(src.glob('*.jpg'))
    cats = [f for f in imgs if is_cat(f.name)][:4]; dogs = [f for f in imgs if not is_cat(f.name)][:4]
    for f in cats[:2] + dogs[:2]: (d/f.name).write_bytes(f.read_bytes())
    Image.open(cats[2]).convert('L').save(d/'Gray_1.jpg')
    Image.open(dogs[2]).convert('RGBA').save(d/'rgba_1.png')
    Image.open(cats[3]).convert('CMYK').save(d/'Cmyk_1.jpg')
    (d/'zero_1.jpg').write_bytes(b'')
    (d/'Notimage_1.jpg').write_text('this is not a jpeg')
    (d/'trunc_1.jpg').write_bytes(dogs[3].read_bytes()[:300])

def test_bad_files_converted_or_skipped_with_one_warning(tmp_path, pets_sample):
    d = tmp_path/'bad'; _write_bad_folder(d, pets_sample/'images')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        dls = pets_dls(d, size=32, valid_pct=0.3, verbose=False)
    msgs = [str(x.message) for x in w if 'could not be read' in str(x.message)]
    assert len(msgs) == 1 and 'Skipped 3 file' in msgs[0]
    assert dls.n_skipped == 3
    names = {f.name for f in list(dls.train_ds.items) + list(dls.valid_ds.items)}
    assert {'Gray_1.jpg', 'rgba_1.png', 'Cmyk_1.jpg'} <= names and len(names) == 7   # cached copies keep their originals' names
    x, _ = dls.valid.one_batch()
    assert x.shape[1] == 3  # everything arrives as RGB

def test_missing_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'): pets_dls(tmp_path/'nowhere', verbose=False)

def test_empty_and_one_class_folders(tmp_path, pets_sample):
    (tmp_path/'empty').mkdir()
    with pytest.raises(ValueError, match='No images'): pets_dls(tmp_path/'empty', verbose=False)
    cats = tmp_path/'cats'; cats.mkdir()
    for f in [f for f in sorted((pets_sample/'images').glob('*.jpg')) if is_cat(f.name)][:6]: (cats/f.name).write_bytes(f.read_bytes())
    with pytest.raises(ValueError, match='All 6 images .* are cats'): pets_dls(cats, verbose=False)

def test_bad_arguments():
    with pytest.raises(ValueError, match='valid_pct'): pets_dls('synthetic', valid_pct=1.5, verbose=False)
    with pytest.raises(ValueError, match='not one of'): pets_dls('synthtic', verbose=False)
    with pytest.raises(ValueError, match='n_images'): pets_dls('synthetic', n_images=2, verbose=False)

def test_auto_falls_back_to_the_bundled_real_pets_and_says_so(capsys, monkeypatch, tmp_path):
    import finetune_lab.data as d
    monkeypatch.delenv('FINETUNE_LAB_PETS', raising=False)
    monkeypatch.setattr(d, 'fastai_path', lambda *a: tmp_path)  # no fastai download cache
    dls = pets_dls('auto', size=32, n_images=10)
    assert dls.source == 'bundled' and 'bundled mini Oxford-IIIT Pet set' in capsys.readouterr().out
    names = {Path(f).name for f in dls.train_ds.items + dls.valid_ds.items}
    assert names <= {f.name for f in d.bundled_pets().iterdir()}   # real photos from the package, not drawings

def test_auto_uses_env_folder(capsys, monkeypatch, pets_sample):
    monkeypatch.setenv('FINETUNE_LAB_PETS', str(pets_sample))
    dls = pets_dls('auto', size=32, n_images=10)
    assert dls.source == str(pets_sample/'images') and 'real Pets images in' in capsys.readouterr().out

def test_env_folder_of_images_is_used_itself_not_its_parent(monkeypatch, tmp_path):
    from finetune_lab.experiment import Config
    mine = tmp_path/'mypets'; mine.mkdir()
    for i in range(4): (mine/f'Bengal_{i}.jpg').touch(); (mine/f'pug_{i}.jpg').touch()
    monkeypatch.setenv('FINETUNE_LAB_PETS', str(mine))
    assert Config().resolved().source == str(mine)

def test_bundled_set_is_real_pets_with_its_licence():
    import finetune_lab.data as d
    from PIL import Image
    import hashlib
    folder = d.bundled_pets()
    files = sorted(folder.glob('*.jpg'))
    breeds = {f.name.rsplit('_', 1)[0] for f in files}
    assert len(files) == 1409 and len(breeds) == 37 and sum(is_cat(f.name) for f in files) == 450
    assert sum(f.stat().st_size for f in files) <= 8_000_000
    with Image.open(files[0]) as im: assert im.size == (128, 128) and im.mode == 'RGB'
    rows = [l.split('\t') for l in (folder.parent/'MANIFEST.tsv').read_text().splitlines()[1:]]
    assert {r[0]: r[3] for r in rows} == {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    lic = (folder.parent/'LICENSE.md').read_text()
    assert 'CC BY-SA 4.0' in lic and 'Parkhi' in lic and 'https://creativecommons.org/licenses/by-sa/4.0/' in lic

def test_bundled_set_ships_in_the_wheel(tmp_path):
    import subprocess, sys, zipfile
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path), str(root)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = zipfile.ZipFile(next(tmp_path.glob('*.whl'))).namelist()
    assert 'finetune_lab/pets_mini/LICENSE.md' in names and 'finetune_lab/pets_mini/MANIFEST.tsv' in names
    assert sum(n.startswith('finetune_lab/pets_mini/images/') and n.endswith('.jpg') for n in names) == 1409


# --- caches that cannot lie, an environment that is named when it is wrong ---------------------------

import os
import finetune_lab.data as data
from fastai.data.external import fastai_cfg


def _photo(path, seed, fmt=None):
    from finetune_lab.data import draw_pet
    draw_pet(is_cat(path.name), seed=seed, size=48).save(path, format=fmt)
    return path


def _pixels(p): return np.asarray(Image.open(p)).astype(float)


def test_same_stem_different_extension_are_two_images(tmp_path):
    "Abyssinian_12.jpg and Abyssinian_12.png shared one cache file: one image vanished, one landed in both sets."
    d = tmp_path/'pets'; d.mkdir()
    a, b = _photo(d/'Abyssinian_12.jpg', 1, 'JPEG'), _photo(d/'Abyssinian_12.png', 2, 'PNG')
    outs, skipped = data.readable_images([a, b], d, 32)
    assert not skipped and [o.name for o in outs] == ['Abyssinian_12.jpg', 'Abyssinian_12.png'] and outs[0] != outs[1]
    assert np.abs(_pixels(outs[0]) - _pixels(outs[1])).mean() > 10          # two different pictures, both kept
    for i in range(4): _photo(d/f'Bengal_{i}.jpg', 10+i); _photo(d/f'pug_{i}.jpg', 20+i)
    dls = pets_dls(d, size=32, bs=2, valid_pct=0.2, verbose=False)
    items = [f.name for f in list(dls.train_ds.items) + list(dls.valid_ds.items)]
    assert sorted(items) == sorted(f.name for f in d.iterdir()) and len(set(items)) == 10   # each image once, none lost


def test_replaced_original_with_older_mtime_is_resized_again(tmp_path):
    d = tmp_path/'pets'; d.mkdir()
    src = _photo(d/'Bengal_1.jpg', 1)
    (out,), _ = data.readable_images([src], d, 32)
    before = _pixels(out)
    _photo(src, 99); os.utime(src, ns=(10**9, 10**9))                       # a new picture dated 1970
    (again,), _ = data.readable_images([src], d, 32)
    assert again == out and np.abs(_pixels(again) - before).mean() > 10     # the cache shows the new picture


@pytest.mark.parametrize('damage', [lambda b: b[:len(b)//2], lambda b: b'', lambda b: b'garbage' * 10])
def test_damaged_cache_entry_is_rebuilt_with_a_warning(tmp_path, damage):
    d = tmp_path/'pets'; d.mkdir()
    src = _photo(d/'Bengal_1.jpg', 1)
    (out,), _ = data.readable_images([src], d, 32)
    good = out.read_bytes()
    out.write_bytes(damage(good))
    with pytest.warns(UserWarning, match=r'Rebuilt 1 damaged cached image\(s\) in .*resized'):
        (again,), skipped = data.readable_images([src], d, 32)
    assert not skipped and again.read_bytes() == good


def test_cache_writes_leave_no_temporaries(tmp_path):
    d = tmp_path/'pets'; d.mkdir()
    files = [_photo(d/f'Bengal_{i}.jpg', i) for i in range(3)]
    outs, _ = data.readable_images(files, d, 32)
    assert sorted(p.name for p in outs[0].parent.iterdir()) == [f.name for f in files]


def test_empty_or_unusable_cache_env_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv('FINETUNE_LAB_CACHE', '')
    with pytest.raises(ValueError, match='FINETUNE_LAB_CACHE is set but empty'): pets_dls('synthetic', size=32, n_images=8, verbose=False)
    (tmp_path/'a_file').write_text('x')
    monkeypatch.setenv('FINETUNE_LAB_CACHE', str(tmp_path/'a_file'))
    with pytest.raises(OSError, match=r"Cannot create finetune_lab's image cache .*a_file.*set FINETUNE_LAB_CACHE to a writable folder"):
        pets_dls('synthetic', size=32, n_images=8, verbose=False)


def test_unwritable_home_suggests_the_cache_variable(monkeypatch, tmp_path, pets_sample):
    "HOME that cannot hold ~/.cache (a read-only mount; here a file, which root cannot write into either)."
    (tmp_path/'home').write_text('not a folder')
    monkeypatch.delenv('FINETUNE_LAB_CACHE', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path/'home'))
    with pytest.raises(OSError, match='set FINETUNE_LAB_CACHE to a writable folder'): pets_dls(pets_sample, size=32, n_images=8, verbose=False)


def test_read_only_cache_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv('FINETUNE_LAB_CACHE', str(tmp_path))
    monkeypatch.setattr(os, 'access', lambda p, mode: False)     # root ignores permissions, so ask os.access to say no
    with pytest.raises(PermissionError, match="image cache .* is read-only: set FINETUNE_LAB_CACHE"): data.cache_folder('resized')


@pytest.fixture
def fresh_fastai_cfg():
    fastai_cfg.cache_clear(); yield; fastai_cfg.cache_clear()


def test_garbage_fastai_config_is_named(monkeypatch, tmp_path, fresh_fastai_cfg):
    (tmp_path/'config.ini').write_text('\x00\x01 garbage, not an ini file\n')
    monkeypatch.setenv('FASTAI_HOME', str(tmp_path)); monkeypatch.delenv('FINETUNE_LAB_PETS', raising=False)
    with pytest.raises(ValueError, match=rf"fastai's settings file {tmp_path/'config.ini'} is damaged .*delete it"): data.auto_source()


def test_unwritable_fastai_home_is_named(monkeypatch, tmp_path, fresh_fastai_cfg):
    (tmp_path/'file').write_text('x')
    monkeypatch.setenv('FASTAI_HOME', str(tmp_path/'file'/'fastai')); monkeypatch.delenv('FINETUNE_LAB_PETS', raising=False)
    with pytest.raises(OSError, match='fastai cannot write its settings file .*set FASTAI_HOME to a writable folder'): data.auto_source()


def test_folder_of_unreadable_images_says_so_not_no_images(tmp_path):
    d = tmp_path/'pets'; d.mkdir()
    for i in range(8): (d/f"{'Bengal' if i % 2 else 'pug'}_{i}.jpg").write_bytes(b'\xff\xd8 not really a jpeg')
    with pytest.warns(UserWarning, match='Skipped 8'), pytest.raises(ValueError, match='None of the 8 image files .* could be read'):
        pets_dls(d, size=32, verbose=False)


def test_offline_pets_download_says_what_else_to_use(monkeypatch):
    from urllib.error import URLError
    def offline(*a, **k): raise URLError('[Errno -3] Temporary failure in name resolution')
    monkeypatch.setattr(data, 'untar_data', offline)
    with pytest.raises(OSError, match=r"Could not download the Oxford-IIIT Pet dataset .*source='bundled'"): pets_dls('pets', verbose=False)


@pytest.mark.parametrize('kw,says', [(dict(bs=1), 'bs=1'), (dict(n_images=8, valid_pct=0.8), 'leaves 2 to train on'),
                                     (dict(n_images=8, valid_pct=0.9), 'leaves 1 to train on')])
def test_batches_of_one_refused_before_any_image_is_read(kw, says, monkeypatch):
    if 'leaves 2' in says:   # 2 train images: allowed, two per batch, so it trains
        dls = pets_dls('synthetic', size=32, verbose=False, **kw)
        assert len(dls.train_ds) == 2 and dls.train.bs >= 2 and len(dls.train) == 1, (len(dls.train_ds), dls.train.bs, len(dls.train))
        return
    monkeypatch.setattr(data, 'resolve_source', lambda *a: pytest.fail('read images before checking the split'))
    with pytest.raises(ValueError, match=says): pets_dls('synthetic', size=32, verbose=False, **kw)


# --- a validation set large enough, the same for every seed --------------------------------------------

from finetune_lab.data import split_photos, check_split


def _names(ds): return [Path(f).name for f in ds.items]


def test_n_valid_holds_out_the_same_stratified_photos_whatever_the_seed_or_size():
    a = pets_dls('bundled', size=32, n_images=20, n_valid=400, seed=1, verbose=False)
    b = pets_dls('bundled', size=32, n_images=40, n_valid=400, seed=2, verbose=False)
    assert _names(a.valid_ds) == _names(b.valid_ds) and len(a.valid_ds) == 400
    assert (len(a.train_ds), len(b.train_ds)) == (20, 40)
    assert sum(is_cat(n) for n in _names(a.valid_ds)) == round(400*450/1409)     # the bundled set's 450 cats in 1,409
    assert not set(_names(a.train_ds) + _names(b.train_ds)) & set(_names(a.valid_ds))   # never trained on
    assert _names(a.train_ds) != _names(b.train_ds)[:20]                           # the seed picks the training photos
    ys = [a.vocab[int(y)] for _, y in (a.valid_ds[i] for i in range(8))]
    assert ys == [is_cat(n) for n in _names(a.valid_ds)[:8]]


def test_n_valid_none_keeps_fastais_random_split():
    d = pets_dls('synthetic', size=32, n_images=20, seed=3, verbose=False)
    assert (len(d.train_ds), len(d.valid_ds)) == (16, 4)                        # valid_pct=0.2 of 20
    assert {n.split('_')[0].lower() for n in _names(d.valid_ds)} <= {'synthcat', 'synthdog'}


def test_synthetic_draws_held_out_pets_of_their_own():
    a = pets_dls('synthetic', size=32, n_images=12, n_valid=10, seed=1, verbose=False)
    b = pets_dls('synthetic', size=32, n_images=12, n_valid=10, seed=2, verbose=False)
    assert (len(a.train_ds), len(a.valid_ds)) == (12, 10)
    assert _names(a.valid_ds) == _names(b.valid_ds) and all(n.lower().startswith('valid') for n in _names(a.valid_ds))
    px = lambda ds, i: np.asarray(Image.open(ds.items[i]))
    assert np.array_equal(px(a.valid_ds, 0), px(b.valid_ds, 0))                 # the very same pictures
    assert not np.array_equal(px(a.train_ds, 0), px(b.train_ds, 0))             # training pets follow the seed


def test_folder_too_small_for_n_valid_says_how_many_and_what_to_do(tmp_path):
    d = tmp_path/'few'; d.mkdir()
    for f in sorted(synthetic_pets(12, seed=3).glob('*.jpg')): (d/f.name).write_bytes(f.read_bytes())
    with pytest.raises(ValueError, match=r'holds 12 photos, too few to hold out n_valid=400.*n_valid=2 or fewer'):
        pets_dls(d, size=32, n_valid=400, verbose=False)
    with pytest.raises(ValueError, match=r'8 are left to train on, fewer than n_images=10\. Use n_images=8 or fewer'):
        pets_dls(d, size=32, n_images=10, n_valid=4, verbose=False)
    dls = pets_dls(d, size=32, n_valid=4, bs=4, verbose=False)                  # n_images=None: all the rest
    assert (len(dls.train_ds), len(dls.valid_ds)) == (8, 4)
    with pytest.raises(ValueError, match='n_valid'): pets_dls(d, n_valid=0, verbose=False)


def test_split_photos_and_check_split():
    files = [f'Cat_{i}.jpg' for i in range(10)] + [f'dog_{i}.jpg' for i in range(30)]
    tr, va = split_photos(files, 8, 12, seed=5)
    assert len(va) == 8 and sum(is_cat(f) for f in va) == 2 and len(tr) == 12 and not set(tr) & set(va)
    assert split_photos(files, 8, 20, seed=6)[1] == va
    assert check_split(30, 0.2, 16, n_valid=10) == (20, 10)
    with pytest.raises(ValueError, match='smaller n_valid'): check_split(11, 0.2, 16, n_valid=10)


def _pets_with(d:Path, n:int=4) -> Path:
    "A folder of `n` drawn cats and `n` drawn dogs, for odd files to sit among."
    d.mkdir(exist_ok=True)
    for i in range(n): _photo(d/f'Bengal_{i}.jpg', 30+i); _photo(d/f'pug_{i}.jpg', 40+i)
    return d

def _skipped(d, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        dls = pets_dls(d, size=32, bs=2, verbose=False, **kw)
    return dls, [str(x.message) for x in w if 'could not be read' in str(x.message)]


def test_image_too_long_for_a_jpeg_is_skipped_with_its_reason(tmp_path):
    "A 1x65535 picture cannot be cached as a JPEG (65,500 px at most): skipped and named, not a false 'disk full'."
    d = _pets_with(tmp_path/'pets')
    Image.new('RGB', (1, 65535), (128, 128, 128)).save(d/'Bengal_long.png')
    dls, msgs = _skipped(d)
    assert dls.n_skipped == 1 and len(msgs) == 1
    assert 'Bengal_long.png' in msgs[0] and '1x65535' in msgs[0] and '65,500' in msgs[0] and 'disk space' not in msgs[0]


def test_symlink_loop_is_skipped_with_its_reason(tmp_path):
    d = _pets_with(tmp_path/'pets')
    (d/'pug_loop.jpg').symlink_to(d/'pug_loop2.jpg'); (d/'pug_loop2.jpg').symlink_to(d/'pug_loop.jpg')
    dls, msgs = _skipped(d)
    assert dls.n_skipped == 2 and len(msgs) == 1
    assert 'pug_loop.jpg: a symlink loop' in msgs[0] and 'pug_loop2.jpg: a symlink loop' in msgs[0]
    assert 'disk space' not in msgs[0]


@pytest.mark.parametrize('errno_, says', [(28, 'free some disk space'), (122, 'free some disk space'), (13, 'writable folder')])
def test_cache_write_error_names_disk_space_only_when_it_is_full(tmp_path, monkeypatch, errno_, says):
    import errno, os
    d = _pets_with(tmp_path/'pets', 1)
    def fail(*a, **kw): raise OSError(errno_, os.strerror(errno_))
    monkeypatch.setattr(data, 'atomic_write', fail)
    with pytest.raises(OSError) as e: data.readable_images([d/'Bengal_0.jpg'], d, 32)
    assert says in str(e.value) and os.strerror(errno_) in str(e.value)
    if errno_ not in (errno.ENOSPC, errno.EDQUOT): assert 'disk space' not in str(e.value)


def _ramp(dtype, lo, hi, n=64):
    "An `n` x `n` picture dark on the left, bright on the right, in `dtype`'s numbers from `lo` to `hi`."
    return np.tile(np.linspace(lo, hi, n), (n, 1)).astype(dtype)

@pytest.mark.parametrize('name, a, mode', [
    ('Bengal_16.png', _ramp(np.uint16, 0, 65535), 'I;16'),        # a 16-bit greyscale PNG: was cached almost white
    ('Bengal_32.tif', _ramp(np.int32, 10**6, 10**9), 'I'),         # a 32-bit TIFF: was cached white
    ('Bengal_f.tif', _ramp(np.float32, 0., 1.), 'F'),              # a float TIFF: was cached black
    ('Bengal_fneg.tif', _ramp(np.float32, -3., 5.), 'F')])
def test_16_bit_32_bit_and_float_greyscale_keep_their_picture(tmp_path, name, a, mode):
    d = tmp_path/'pets'; d.mkdir()
    Image.fromarray(a).save(d/name)
    assert Image.open(d/name).mode == mode
    (out,), skipped = data.readable_images([d/name], d, 32)
    px = _pixels(out)
    assert not skipped and abs(px.mean() - 127.5) < 4                       # mid grey on average, as the ramp is
    assert px[:, :2].mean() < 20 and px[:, -2:].mean() > 235                # and still a ramp: dark left, bright right
    assert np.abs(px[..., 0] - px[..., 2]).max() <= 2                       # grey stays grey


def test_a_flat_float_picture_is_mid_grey(tmp_path):
    d = tmp_path/'pets'; d.mkdir()
    Image.fromarray(np.full((32, 32), 7.5, np.float32)).save(d/'Bengal_flat.tif')
    (out,), skipped = data.readable_images([d/'Bengal_flat.tif'], d, 32)
    assert not skipped and abs(_pixels(out).mean() - 128) < 2


def test_a_different_picture_with_the_same_size_and_date_is_resized_again(tmp_path):
    "The cache knows a picture by its content, not only by its size and modification time."
    d = tmp_path/'pets'; d.mkdir()
    src = _photo(d/'Bengal_1.bmp', 1, 'BMP'); os.utime(src, ns=(10**18, 10**18))
    size = src.stat().st_size
    (out,), _ = data.readable_images([src], d, 32)
    before = _pixels(out)
    _photo(src, 99, 'BMP'); os.utime(src, ns=(10**18, 10**18))              # another picture, same size, same date
    assert src.stat().st_size == size and src.stat().st_mtime_ns == 10**18
    (again,), _ = data.readable_images([src], d, 32)
    assert np.abs(_pixels(again) - before).mean() > 10                      # the cache shows the new picture
