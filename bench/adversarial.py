"""Issue 17's adversarial pass, scripted: bad environments, bad flags, colliding outputs, hostile history files,
unreadable images, damaged caches and Ctrl-C, each against the real `finetune-lab` console script in its own process.
Every case must end without a traceback, with its expected exit code, in one line on stderr when it fails, and
without losing or changing any file that was there before (a snapshot of every protected file is compared after).

    python bench/adversarial.py            # about 3 minutes on 2 CPU cores
"""
import hashlib, os, shutil, signal, subprocess, sys, tempfile, time, zipfile
from pathlib import Path
import numpy as np
from finetune_lab.testing import fake_history
from finetune_lab.data import draw_pet, is_cat, bundled_pets, _cached, _stamp

START = "import sys; from finetune_lab.console import start; sys.argv[0] = 'finetune-lab'; sys.exit(start())"
TINY = ['--source', 'synthetic', '--arch', 'efficientnet_lite0', '--n-images', '16', '--size', '32', '--bs', '8', '--quiet']
W = Path(tempfile.mkdtemp(prefix='finetune_lab_adversarial_'))
BASE_ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'FINETUNE_LAB_CACHE': str(W/'cache'), 'PYTHONUNBUFFERED': '1'}


def snapshot(root:Path) -> dict:
    "sha1 of every file under `root` (outputs of earlier cases, the histories given to show, the image folders)."
    return {str(p): hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob('*') if p.is_file() and 'cache' not in p.parts
            and not (p.name.startswith('.') and p.suffix in ('.lock', '.tmp'))}   # the CLI's own locks and temporaries


def one_line(err, code) -> bool:
    "A failure is one finetune-lab error line (its warnings, one line each, may precede it; other libraries' are counted apart)."
    ours = [l for l in err.strip().splitlines() if l.startswith('finetune-lab: ') and not l.startswith('finetune-lab: warning: ')]
    return len(ours) == (code > 0)   # a process the kernel killed (SIGKILL: code -9) prints nothing


def foreign(err) -> list:
    "stderr lines not written by finetune-lab (e.g. matplotlib's own warning when HOME is unusable)."
    return [l for l in err.strip().splitlines() if l.strip() and not l.startswith('finetune-lab: ')]


def launch(args, env=None):
    return subprocess.Popen([sys.executable, '-c', START, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**BASE_ENV, **(env or {})}, cwd=W)


def case(name, args, codes, env=None, sigint_at=None, check=None, sig=signal.SIGINT, again=None):
    """Run one case (Ctrl-C, or `sig`, after `sigint_at` seconds, or once stdout shows that text, or once `sigint_at()` is
    true; with `again`, the same signal a second time that many seconds later); return what was seen."""
    before = snapshot(W)
    p, seen = launch(args, env), ''
    def send():
        p.send_signal(sig)
        if again is not None and p.poll() is None: time.sleep(again); p.send_signal(sig)
    if isinstance(sigint_at, float): time.sleep(sigint_at); send()
    elif callable(sigint_at):
        while not sigint_at() and p.poll() is None: time.sleep(0.05)
        send()
    elif sigint_at is not None:
        while sigint_at not in seen and p.poll() is None: seen += p.stdout.readline()
        send()
    out, err = p.communicate(timeout=900)
    out = seen + out
    after = snapshot(W)
    changed = [k for k, v in before.items() if after.get(k) != v]            # lost or silently changed
    said = [l.split(': ', 1)[1].split(', ') for l in out.splitlines() if l.startswith('wrote ')]
    outdir = next((Path(a) for a, b in zip(args, args[1:] + ['']) if a == '--out' for a in [b]), None)
    missing = [n for s in said for n in s if outdir is not None and not (outdir/n).exists()]
    r = dict(name=name, code=p.returncode, traceback='Traceback' in out + err, changed=changed, missing=missing,
             one_line=one_line(err, p.returncode), expected=p.returncode in codes,
             extra=check() if check else True, err=err.strip()[-200:], foreign=foreign(err))
    ok = r['expected'] and not r['traceback'] and not changed and not missing and r['one_line'] and r['extra']
    print(f"{'ok  ' if ok else 'FAIL'} {name:55s} exit {p.returncode:3d}  {r['err'][:110] if ok else err}", flush=True)
    return r


def cache_sound() -> bool:
    "After a Ctrl-C while resizing: no temporaries, and every cached copy whole and made from its current original."
    fs = list((W/'cache').rglob('photos_*/*'))
    return bool(fs) and all(f.suffix != '.tmp' and _cached(f, _stamp(W/'photos'/f.name)) == 'fresh' for f in fs)


def setup():
    "Files the cases use: a finished run to protect, image folders, hostile histories."
    h = fake_history(steps_per_epoch=3)
    for d in ('a', 'b'): (W/d).mkdir(); h.save(W/d/'run.npz')
    (W/'notes.npz').write_text('cats are upper-case\n')
    (W/'a_file').write_text('x')
    with zipfile.ZipFile(W/'huge.npz', 'w') as z:   # meta is fine, arrays claim 40,000 x 4,000
        import json; from finetune_lab.history import FORMAT, VERSION, ARRAYS
        meta = dict(format=FORMAT, version=VERSION, interrupted=False, config={}, tables=dict(layers=['name'], steps=['step'], epochs=[]))
        heads = {'layers/name': (4000,), 'steps/step': (40000,), **{k: (40000, 4000) for k in ARRAYS}}
        with z.open('meta.npy', 'w') as f: np.save(f, np.array(json.dumps(meta)))
        for k, s in heads.items():
            with z.open(k + '.npy', 'w') as f: np.lib.format.write_array_header_1_0(f, dict(descr='<f4', fortran_order=False, shape=s))
    (W/'trunc.npz').write_bytes((W/'a'/'run.npz').read_bytes()[:500])
    bad = W/'unreadable'; bad.mkdir()
    for i in range(16): (bad/f"{'Bengal' if i % 2 else 'pug'}_{i}.jpg").write_bytes(b'\xff\xd8 not a jpeg')
    ext = W/'same_stem'; ext.mkdir()
    for i in range(8):
        for e, fmt in (('.jpg', 'JPEG'), ('.png', 'PNG')):
            n = f"{'Bengal' if i % 2 else 'pug'}_{i}{e}"; draw_pet(is_cat(n), seed=i * 2 + (e == '.png'), size=48).save(ext/n, format=fmt)
    (W/'cfg').mkdir(); (W/'cfg'/'config.ini').write_text('[[ garbage\n')
    shutil.copytree(bundled_pets(), W/'photos')
    (W/'onecls').mkdir()
    for i in range(8): draw_pet(True, seed=i, size=48).save(W/'onecls'/f'Bengal_{i}.jpg')
    odd_inputs()


def odd_inputs():
    """Sections 8 and 9: odd images (a side too long for a JPEG, a symlink loop, 16-bit, 32-bit and float greyscale), a picture
    replaced by another of the same size and date after it was cached, and histories that load but are degenerate."""
    from PIL import Image
    from finetune_lab.data import readable_images
    odd = W/'odd'; odd.mkdir()
    for i in range(6): draw_pet(True, seed=i, size=48).save(odd/f'Bengal_{i}.jpg'); draw_pet(False, seed=i, size=48).save(odd/f'pug_{i}.jpg')
    Image.new('RGB', (1, 65535), (128, 128, 128)).save(odd/'Bengal_long.png')
    (odd/'pug_loop.jpg').symlink_to(odd/'pug_loop2.jpg'); (odd/'pug_loop2.jpg').symlink_to(odd/'pug_loop.jpg')
    ramp = lambda t, lo, hi: np.tile(np.linspace(lo, hi, 64), (64, 1)).astype(t)
    Image.fromarray(ramp(np.uint16, 0, 65535)).save(odd/'Bengal_16.png')
    Image.fromarray(ramp(np.int32, 10**6, 10**9)).save(odd/'pug_32.tif')
    Image.fromarray(ramp(np.float32, 0, 1)).save(odd/'Bengal_float.tif')
    same = W/'same_date'; same.mkdir()
    for i in range(6): draw_pet(True, seed=i, size=48).save(same/f'Bengal_{i}.bmp'); draw_pet(False, seed=i, size=48).save(same/f'pug_{i}.bmp')
    for f in same.iterdir(): os.utime(f, ns=(10**18, 10**18))
    os.environ['FINETUNE_LAB_CACHE'] = BASE_ENV['FINETUNE_LAB_CACHE']
    readable_images(sorted(same.iterdir()), same, 32)                      # cached as the CLI would (size 32)
    draw_pet(True, seed=99, size=48).save(same/'Bengal_0.bmp'); os.utime(same/'Bengal_0.bmp', ns=(10**18, 10**18))   # same size, same date
    flat = fake_history(steps_per_epoch=3)
    flat.change[:] = np.where(np.nan_to_num(flat.change) > 0, .01, flat.change); flat.save(W/'flat.npz')
    dollar = fake_history(steps_per_epoch=3)
    dollar.layers['name'] = [f'a$x^{{{i}$' for i in range(len(dollar.layers))]; dollar.save(W/'dollar.npz')
    for name, wrong, base, y in (('tie3', (0, 1, 0), (1, 0, 0), (0, 1, 1)), ('tie0', (0, 0, 0), (0, 0, 0), (1, 1, 1))):
        h, y = fake_history(steps_per_epoch=3, n_valid=3), np.array(y)
        h.valid_targets, h.valid_preds = y, np.where(wrong, 1 - y, y)
        h.baseline_preds, h.baselines = dict(majority=np.where(base, 1 - y, y)), dict(majority=float(np.mean(base)))
        h.epochs.loc[h.epochs.index[-1], 'error_rate'] = np.float32(np.mean(wrong)); h.save(W/f'{name}.npz')


def odd_cached_grey() -> bool:
    "The odd folder's 16-bit, 32-bit and float ramps cached as ramps (mean grey), the unusable files not cached at all."
    from PIL import Image
    d = next((W/'cache').rglob('odd_*'), None)
    if d is None: return False
    means = [np.asarray(Image.open(d/n)).mean() for n in ('Bengal_16.png', 'pug_32.tif', 'Bengal_float.tif')]
    return all(abs(m - 127.5) < 6 for m in means) and not any((d/n).exists() for n in ('Bengal_long.png', 'pug_loop.jpg'))


def cache_current(folder) -> bool:
    "Every cached copy of `folder`'s pictures made from its current content."
    d = next((W/'cache').rglob(f'{folder}_*'), None)
    fs = list(d.iterdir()) if d else []
    if len(fs) != 12 or not all(_cached(f, _stamp(W/folder/f.name)) == 'fresh' for f in fs): return False
    from PIL import Image   # and Bengal_0, replaced after it was cached, shows the new picture (seed 99), not the old (seed 0)
    px = lambda im: np.asarray(im.convert('RGB').resize((32, 32))).astype(float)
    got = px(Image.open(d/'Bengal_0.bmp'))
    return np.abs(got - px(draw_pet(True, seed=99, size=48))).mean() < np.abs(got - px(draw_pet(True, seed=0, size=48))).mean()


def says(outdir, *yes, no=()) -> bool:
    t = (W/'out'/outdir/'explain.txt').read_text()
    return all(y in t for y in yes) and not any(n in t for n in no)

def partial_run(d) -> bool:
    "Section 7: `d` holds the run's files and no lock or temporary; its history is marked interrupted and has steps."
    from finetune_lab.history import RunHistory
    d = W/'out'/d
    if sorted(p.name for p in d.iterdir()) != ['explain.txt', 'run.npz', 'run.png']: return False
    h = RunHistory.load(d/'run.npz')
    return h.interrupted and len(h.steps) > 0


def plain_names(d) -> bool:
    "Section 7: the run took the plain names and left nothing hidden (a killed command's lock did not number it)."
    return sorted(p.name for p in (W/'out'/d).iterdir()) == ['explain.txt', 'run.npz', 'run.png']


def read_only(d:Path) -> Path:
    "Section 7: an empty folder nothing can be written into (as root, chmod stops nothing: the immutable flag too)."
    d.mkdir(); d.chmod(0o555)
    if os.geteuid() == 0: subprocess.run(['chattr', '+i', d], check=True)
    return d


def main():
    setup()
    o = lambda d: ['--out', W/'out'/d]
    cases = [
        # 1. environment
        ('FINETUNE_LAB_PETS missing, demo', ['demo', *o('e1')], {2}, dict(FINETUNE_LAB_PETS=str(W/'nonexistent'))),
        ('FINETUNE_LAB_PETS is a file, demo', ['demo', *o('e2')], {2}, dict(FINETUNE_LAB_PETS=str(W/'a_file'))),
        ('FINETUNE_LAB_PETS one class only', ['run', *o('e3'), '--arch', 'efficientnet_lite0'], {2}, dict(FINETUNE_LAB_PETS=str(W/'onecls'))),
        ('FINETUNE_LAB_CACHE empty', ['run', *TINY, *o('e4')], {2}, dict(FINETUNE_LAB_CACHE='')),
        ('FINETUNE_LAB_CACHE is a file', ['run', *TINY, *o('e5')], {1, 2}, dict(FINETUNE_LAB_CACHE=str(W/'a_file'))),
        ('HOME and FINETUNE_LAB_CACHE unusable', ['run', *TINY, *o('e6')], {1, 2}, dict(HOME=str(W/'a_file'), FINETUNE_LAB_CACHE=str(W/'a_file'/'x'))),
        ('FASTAI_HOME garbage config.ini', ['demo', *o('e7')], {2}, dict(FASTAI_HOME=str(W/'cfg'), FINETUNE_LAB_PETS='')),
        ('FASTAI_HOME unwritable', ['demo', *o('e8')], {1, 2}, dict(FASTAI_HOME=str(W/'a_file'/'fastai'), FINETUNE_LAB_PETS='')),
        # 2. flags
        ('--bs 1', ['run', *TINY, '--bs', '1', *o('f1')], {2}), ('--valid-pct 0.9 of 8', ['run', *TINY, '--n-images', '8', '--n-valid', 'none', '--valid-pct', '0.9', *o('f2')], {2}),
        ("--strategies ','", ['compare', '--strategies', ',', *o('f3')], {2}), ('--strategies full,full', ['compare', '--strategies', 'full,full', *o('f4')], {2}),
        ('--vary head_depth=,', ['compare', '--vary', 'head_depth=,', *o('f5')], {2}), ('--size abc', ['run', '--size', 'abc', *o('f6')], {2}),
        ('--out is a file', ['run', *TINY, '--out', W/'a_file'], {1}),
        # 3. history files given to show
        ('show a text file', ['show', W/'notes.npz', *o('h1')], {2}), ('show a 2.4 GB claim', ['show', W/'huge.npz', *o('h2')], {2}),
        ('show a truncated history', ['show', W/'trunc.npz', *o('h3')], {2}), ('show a folder', ['show', W/'a', *o('h4')], {2}),
        ('show /dev/null', ['show', '/dev/null', *o('h5')], {2}),
        ('show a/run.npz b/run.npz', ['show', W/'a'/'run.npz', W/'b'/'run.npz', *o('h6')], {0}),
        ('show into the folder it reads', ['show', W/'a'/'run.npz', '--out', W/'a'], {0}),
        ('show into the folder it reads, again', ['show', W/'a'/'run.npz', '--out', W/'a'], {0}),
        # 4. images and caches
        ('16 unreadable .jpg files', ['run', '--source', W/'unreadable', '--arch', 'efficientnet_lite0', '--size', '32', *o('d1')], {2}),
        ('same stems, .jpg and .png', ['run', '--source', W/'same_stem', '--n-valid', 'none', '--arch', 'efficientnet_lite0', '--size', '32', '--bs', '4',
                                       '--n-images', 'none', '--quiet', *o('d2')], {0}),
        # 5. outputs that would collide
        ('run into an empty folder', ['run', *TINY, *o('o1')], {0}), ('run into the same folder again', ['run', *TINY, *o('o1')], {0}),
        ('compare --vary source= values that slug alike', ['compare', '--vary', f"source={W/'same_stem'},{W/'same_stem'}/", *TINY[2:], *o('o2')], {0, 2}),
        # 6. Ctrl-C
        ('SIGINT while importing', ['run', *TINY, *o('s1')], {130}, None, 0.8),
        ('SIGINT while training', ['run', *TINY[:-1], '--epochs', '30', *o('s2')], {130}, None, 'phase: unfrozen'),
        ('SIGINT while resizing', ['run', '--source', W/'photos', '--n-images', 'none', '--size', '64', '--arch', 'efficientnet_lite0', *o('s3')],
         {130}, None, lambda: len(list((W/'cache').rglob('photos_*/*'))) > 50, cache_sound),
        # 7. interrupted runs and stale locks (double Ctrl-C, SIGTERM, SIGKILL)
        ('two SIGINTs 0.05 s apart while training', ['run', *TINY[:-1], '--epochs', '30', *o('s4')], {130}, None, 'phase: unfrozen',
         lambda: partial_run('s4'), signal.SIGINT, 0.05),
        ('two SIGINTs 0.3 s apart while training', ['run', *TINY[:-1], '--epochs', '30', *o('s5')], {130}, None, 'phase: unfrozen',
         lambda: partial_run('s5'), signal.SIGINT, 0.3),
        ('SIGTERM while training', ['run', *TINY[:-1], '--epochs', '30', *o('s6')], {143}, None, 'phase: unfrozen',
         lambda: partial_run('s6'), signal.SIGTERM),
        ('SIGTERM while importing', ['run', *TINY, *o('s7')], {143}, None, 0.8, lambda: not (W/'out'/'s7').exists(), signal.SIGTERM),
        ('SIGKILL while training', ['run', *TINY[:-1], '--epochs', '30', *o('s8')], {-9}, None, 'phase: unfrozen',
         lambda: [p.name for p in (W/'out'/'s8').iterdir()] == ['.finetune-lab.lock'], signal.SIGKILL),
        ('run into the folder the SIGKILL left', ['run', *TINY, *o('s8')], {0}, None, None, lambda: plain_names('s8')),
        ('--overwrite into a read-only folder', ['run', *TINY, '--overwrite', '--out', read_only(W/'ro')], {1}, None, None,
         lambda: not list((W/'ro').iterdir())),
        # 8. odd images (huge sides, symlink loops, 16-bit and float modes) and the image cache's key
        ('1x65535 image, symlink loop, 16-bit/32-bit/float grey', ['run', '--source', W/'odd', '--arch', 'efficientnet_lite0', '--size', '32', '--bs', '4', '--n-images', 'none', '--n-valid', 'none', '--quiet', *o('i1')], {0}, None, None, odd_cached_grey),
        ('a cached picture replaced, same size and date', ['run', '--source', W/'same_date', '--arch', 'efficientnet_lite0', '--size', '32', '--bs', '4', '--n-images', 'none', '--n-valid', 'none', '--quiet', *o('i2')], {0}, None, None,
         lambda: cache_current('same_date')),
        # 9. histories that load but are degenerate (equal changes, odd layer names), equal-number comparisons
        ('show: every moved cell changed alike', ['show', W/'flat.npz', *o('h7')], {0}), ('show: $ in layer names', ['show', W/'dollar.npz', *o('h8')], {0}),
        ('show: 1 of 3 wrong against 1 of 3', ['show', W/'tie3.npz', *o('h9')], {0}, None, None, lambda: says('h9', 'a tie within noise', no=('beats', 'no better'))),
        ('show: 0 % against 0 %, one class', ['show', W/'tie0.npz', *o('h10')], {0}, None, None, lambda: says('h10', 'a tie within noise', no=('beats', 'no better'))),
    ]
    t0, res = time.time(), []
    for c in cases: res.append(case(*c))
    # two at once into one folder
    before = snapshot(W)
    ps = [launch(['run', *TINY, '--seed', s, *o('c1')]) for s in (1, 2)]
    outs = [p.communicate(timeout=900) for p in ps]
    files = sorted(p.name for p in (W/'out'/'c1').iterdir())
    ok = [p.returncode for p in ps] == [0, 0] and files == ['explain-2.txt', 'explain.txt', 'run-2.npz', 'run-2.png', 'run.npz', 'run.png']
    print(f"{'ok  ' if ok else 'FAIL'} {'two runs at once into one folder':55s} files {files}")
    after = snapshot(W)
    res.append(dict(name='concurrent', traceback=any('Traceback' in a + b for a, b in outs), changed=[k for k, v in before.items() if after.get(k) != v],
                    missing=[], one_line=True, expected=ok, extra=True, foreign=[l for _, e in outs for l in foreign(e)]))
    bad = [r for r in res if r['traceback'] or r['changed'] or r['missing'] or not r['one_line'] or not r['expected'] or not r['extra']]
    print(f"\n{len(res)} cases in {time.time()-t0:.0f} s: {sum(r['traceback'] for r in res)} tracebacks, "
          f"{sum(len(r['changed']) for r in res)} files lost or changed, {sum(len(r['missing']) for r in res)} files said written but missing, "
          f"{sum(not r['one_line'] for r in res)} commands not ending in one error line, {sum(not r['expected'] for r in res)} unexpected exit codes; "
          f"{len(bad)} failed. Other libraries' stderr lines: {sum(len(r['foreign']) for r in res)} in {sum(bool(r['foreign']) for r in res)} case(s)")
    for r in res:
        for l in r['foreign']: print(f"  [{r['name']}] {l[:160]}")
    if os.geteuid() == 0: subprocess.run(['chattr', '-i', W/'ro'])
    (W/'ro').chmod(0o755)
    shutil.rmtree(W, ignore_errors=True)
    return 1 if bad else 0


if __name__ == '__main__': sys.exit(main())
