"Tests of the `finetune-lab` command line: every command writes its files, mistakes exit 2 in one line, the console script runs."
import shutil, subprocess
from pathlib import Path
import numpy as np, pytest
from finetune_lab import cli
from finetune_lab.cli import main, flag
from finetune_lab.experiment import Config
from finetune_lab.history import RunHistory
from finetune_lab.models import WeightsUnavailableError
from finetune_lab.testing import fake_history

TINY = ['--source', 'synthetic', '--arch', 'efficientnet_lite0', '--n-images', '24', '--n-valid', '24', '--size', '64']


def call(capsys, *args):
    "Run `finetune-lab *args` in-process: (exit code, stdout, stderr)."
    code = main([str(a) for a in args])
    o = capsys.readouterr()
    return code, o.out, o.err


def names(d): return sorted(p.name for p in Path(d).iterdir())


def one_line(err): return len(err.strip().splitlines()) == 1 and err.startswith('finetune-lab: ') and 'Traceback' not in err


def test_run_help_lists_every_config_field(capsys):
    code, out, _ = call(capsys, 'run', '--help')
    assert code == 0
    flat = ' '.join(out.split())  # argparse wraps long help lines
    for name, typ, default, help in Config.fields_help():
        assert f'{flag(name)} ' in flat, name
        assert f'(default: {default!r})' in flat, name
        assert ' '.join(help.split()[:4]) in flat, name
    for bool_field in [n for n, t, *_ in Config.fields_help() if t == 'bool']:
        assert f"--no-{bool_field.replace('_', '-')}" in flat


def test_demo_help_shows_the_demo_defaults(capsys):
    code, out, _ = call(capsys, 'demo', '--help')
    flat = ' '.join(out.split())
    assert code == 0
    for k, v in cli.DEMO.items(): assert f"{flag(k)} " in flat and f'(default: {v!r})' in flat, k
    assert '--strategy ' not in flat  # the demo chooses the strategies itself


@pytest.mark.parametrize('args,says', [
    (['run', '--size', '8'], '--size: Config.size=8 is not allowed: use a whole number from 32 to 1024'),
    (['run', '--strategy', 'fast'], "Config.strategy='fast' is not allowed"),
    (['run', '--head-depth', 'two'], "--head-depth 'two' is not a whole number"),
    (['run', '--n-images', 'all'], "--n-images 'all' is not a whole number or 'none'"),
    (['run', '--train-bn', 'maybe'], "--train-bn 'maybe' is not true or false"),
    (['run', '--no-pretrained', '--strategy', 'head_only'], "strategy='head_only' with pretrained=False"),
    (['run', '--source', '/no/such/folder'], "Config.source='/no/such/folder' is not allowed"),
    (['run', '--freeze_epochs', '2'], 'unrecognized arguments: --freeze_epochs'),
    (['demo', '--strategy', 'full'], 'unrecognized arguments: --strategy'),
    (['compare', '--vary', 'depth=0,1'], "unknown knob 'depth'"),
    (['compare', '--vary', 'head_depth'], 'write KNOB=v1,v2'),
    (['compare', '--vary', 'head_depth=0,0'], 'repeats a value'),
    (['compare', '--vary', 'freeze_epochs=0,99'], 'Config.freeze_epochs=99 is not allowed'),
    (['compare', '--strategies', 'fine_tune,slow'], "Config.strategy='slow' is not allowed"),
    (['compare', '--vary', 'head_depth=0,1', '--head-depth', '2'], 'both fixed and varied'),
    (['compare', '--vary', 'head_depth=0,1', '--strategies', 'full,fine_tune'], 'give one of --vary'),
    (['show'], 'the following arguments are required: FILE'),
    (['show', '/no/such/history.npz'], 'No RunHistory file at /no/such/history.npz'),
    (['teach'], "invalid choice: 'teach'"),
])
def test_mistakes_exit_2_with_one_line(capsys, args, says):
    code, out, err = call(capsys, *args)
    assert code == 2
    assert says in err
    assert len(err.strip().splitlines()) == 1 and err.startswith('finetune-lab')
    assert 'Traceback' not in err + out


def test_no_command_prints_help_and_exits_2(capsys):
    code, out, _ = call(capsys)
    assert code == 2 and 'demo' in out and 'compare' in out


def test_show_refuses_a_file_that_is_not_a_history(capsys, tmp_path):
    bad = tmp_path/'notes.npz'
    np.savez(bad, x=np.arange(3))
    code, out, err = call(capsys, 'show', bad, '--out', tmp_path/'out')
    assert code == 2
    assert f'Cannot read {bad} as a RunHistory' in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path/'out'/'notes.png').exists()


def test_missing_weights_exit_2_before_training(capsys, tmp_path, monkeypatch):
    def no_weights(arch): raise WeightsUnavailableError(f"No ImageNet weights for {arch}: offline.")
    trained = []
    monkeypatch.setattr(cli, 'pretrained_state', no_weights)
    monkeypatch.setattr(cli, 'run', lambda *a, **k: trained.append(1))
    code, out, err = call(capsys, 'run', *TINY, '--out', tmp_path)
    assert code == 2 and 'No ImageNet weights for efficientnet_lite0: offline.' in err and not trained


@pytest.mark.slow
def test_run_writes_report_history_and_words_then_show_redraws_it(capsys, tmp_path):
    code, out, err = call(capsys, 'run', *TINY, '--freeze-epochs', '1', '--epochs', '1', '--head-depth', '2', '--out', tmp_path)
    assert code == 0, err
    assert names(tmp_path) == ['explain.txt', 'run.npz', 'run.png']
    assert 'phase: frozen (fit 0, 1 epoch)' in out and 'phase: unfrozen (fit 1, 1 epoch)' in out
    # captured, stdout is not a terminal: one line per epoch, no progress-bar frames
    assert '\r' not in out and out.count('    epoch 0, train_loss ') == 2 and 'error_rate ' in out
    h0 = RunHistory.load(tmp_path/'run.npz')
    ec, maj = h0.final_errors(), h0.baseline_errors('majority')
    assert f"  -> error {ec.text()}; larger class {maj.wrong} of 24 ({100*maj.rate:.1f} %): " in out and 'exact McNemar p' in out
    assert 'note: 24 validation photos: one photo is 4.17 points of error rate' in out
    h = RunHistory.load(tmp_path/'run.npz')
    assert (h.config['head_depth'], h.config['n_images'], h.config['size']) == (2, 24, 64)
    assert list(h.epochs.phase) == ['frozen', 'unfrozen']
    assert (tmp_path/'run.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'frozen' in (tmp_path/'explain.txt').read_text()

    again = tmp_path/'again'
    code, out, err = call(capsys, 'show', tmp_path/'run.npz', '--out', again)
    assert code == 0, err
    assert names(again) == ['explain.txt', 'run.png']  # nothing re-saved, nothing trained
    assert 'phase:' not in out
    assert (again/'explain.txt').read_text() == (tmp_path/'explain.txt').read_text()


@pytest.mark.slow
def test_compare_varies_one_knob_and_keeps_the_rest(capsys, tmp_path):
    code, out, err = call(capsys, 'compare', '--vary', 'train-bn=true,false', *TINY, '--quiet', '--out', tmp_path)
    assert code == 0, err
    assert names(tmp_path) == ['compare.png', 'explain.txt', 'train_bn=False.npz', 'train_bn=False.png',
                               'train_bn=True.npz', 'train_bn=True.png']
    a, b = RunHistory.load(tmp_path/'train_bn=True.npz'), RunHistory.load(tmp_path/'train_bn=False.npz')
    assert (a.config['train_bn'], b.config['train_bn']) == (True, False)
    assert {k for k in a.config if a.config[k] != b.config[k]} == {'train_bn'}
    # the knob really changed training: frozen norm layers train only with train_bn=True
    frozen_norm = lambda h: h.trainable[(h.steps.phase == 'frozen').values][:, ((h.layers.part == 'body') & (h.layers.kind == 'batchnorm')).values]
    assert frozen_norm(a).all() and not frozen_norm(b).any()
    assert '== train_bn=True vs train_bn=False ==' in (tmp_path/'explain.txt').read_text()


@pytest.mark.slow
def test_demo_takes_run_flags_as_overrides(capsys, tmp_path):
    code, out, err = call(capsys, 'demo', *TINY, '--bs', '32', '--quiet', '--out', tmp_path)
    assert code == 0, err
    assert names(tmp_path) == ['compare.png', 'explain.txt', 'fine_tune.npz', 'fine_tune.png', 'full.npz', 'full.png',
                               'head_only.npz', 'head_only.png']
    for s in cli.DEMO_STRATEGIES:
        c = RunHistory.load(tmp_path/f'{s}.npz').config
        assert (c['strategy'], c['n_images'], c['bs'], c['freeze_epochs']) == (s, 24, 32, cli.DEMO['freeze_epochs'])
    for line in ('data: synthetic', 'backbone: efficientnet_lite0 (--arch)', 'settings: 24 images at 64 px', 'strategies: fine_tune'):
        assert line in out
    assert str(tmp_path.resolve()) in out


def test_an_interrupted_run_stops_the_rest_and_keeps_what_ran(capsys, tmp_path, monkeypatch):
    ran = []
    def fake_run(cfg, cbs=None, progress=True):  # the 2nd run is cut short, as Ctrl-C in run() would leave it
        ran.append(cfg.freeze_epochs)
        return fake_history(freeze_epochs=cfg.freeze_epochs, steps_per_epoch=4, interrupt_at=.5 if len(ran) == 2 else None)
    monkeypatch.setattr(cli, 'prepare', lambda cfgs: None)
    monkeypatch.setattr(cli, 'run', fake_run)
    code, out, err = call(capsys, 'compare', '--vary', 'freeze_epochs=0,1,2', '--quiet', '--out', tmp_path)
    assert code == 130 and ran == [0, 1]
    assert 'interrupted: 2 of 3 runs written' in err and one_line(err)
    assert 'freeze_epochs=1.npz' in names(tmp_path) and 'freeze_epochs=2.npz' not in names(tmp_path)
    assert RunHistory.load(tmp_path/'freeze_epochs=1.npz').interrupted


def test_show_names_files_apart_when_stems_clash(capsys, tmp_path):
    for d, s in (('a', 'fine_tune'), ('b', 'full')):
        (tmp_path/d).mkdir(); fake_history(s, steps_per_epoch=3).save(tmp_path/d/'run.npz')
    code, out, err = call(capsys, 'show', tmp_path/'a'/'run.npz', tmp_path/'b'/'run.npz', '--out', tmp_path/'out')
    assert code == 0, err
    assert names(tmp_path/'out') == ['compare.png', 'explain.txt', 'run_1.png', 'run_2.png']


@pytest.mark.slow
def test_console_script_is_installed_and_answers_help():
    exe = shutil.which('finetune-lab')
    if exe is None: pytest.skip("the finetune-lab console script is not on PATH: run `pip install -e .` first")
    r = subprocess.run([exe, '--help'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and 'demo' in r.stdout and 'compare' in r.stdout and 'show' in r.stdout
    r = subprocess.run([exe, 'run', '--size', '8'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == ''
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and 'Config.size=8 is not allowed' in r.stderr


# --- nothing lost, never a traceback -------------------------------------------------------------------

import errno, os
import finetune_lab.data as data
import finetune_lab.history as history
from fastai.data.external import fastai_cfg




@pytest.fixture
def fake_training(monkeypatch):
    "Runs that take no time: `prepare` does nothing and `run` returns a small fake history of the config's strategy."
    ran = []
    def fake_run(cfg, cbs=None, progress=True):
        ran.append(cfg)
        h = fake_history(cfg.strategy, freeze_epochs=cfg.freeze_epochs, steps_per_epoch=3)
        h.config = cfg.asdict()
        return h
    monkeypatch.setattr(cli, 'prepare', lambda cfgs: None)
    monkeypatch.setattr(cli, 'run', fake_run)
    return ran


def snapshot(d): return {p.name: p.read_bytes() for p in Path(d).iterdir()}


def test_a_second_run_never_replaces_the_first(capsys, tmp_path, fake_training):
    assert call(capsys, 'run', '--out', tmp_path)[0] == 0
    first = snapshot(tmp_path)
    code, out, err = call(capsys, 'run', '--epochs', '2', '--out', tmp_path)
    assert code == 0, err
    assert {k: v for k, v in snapshot(tmp_path).items() if k in first} == first          # byte for byte
    assert names(tmp_path) == ['explain-2.txt', 'explain.txt', 'run-2.npz', 'run-2.png', 'run.npz', 'run.png']
    assert 'run-2.npz' in out and '--overwrite replaces them' in out
    assert RunHistory.load(tmp_path/'run-2.npz').config['epochs'] == 2
    code, out, err = call(capsys, 'run', '--epochs', '3', '--overwrite', '--out', tmp_path)   # the old behaviour, asked for
    assert code == 0 and RunHistory.load(tmp_path/'run.npz').config['epochs'] == 3 and len(names(tmp_path)) == 6


def test_what_the_cli_says_it_wrote_exists(capsys, tmp_path, fake_training):
    code, out, err = call(capsys, 'demo', '--out', tmp_path)
    line = next(l for l in out.splitlines() if l.startswith('wrote '))
    said = line.split(': ', 1)[1].split(', ')
    assert code == 0 and sorted(said) == names(tmp_path) and f'wrote {len(said)} files' in line


def _full_disk_after(monkeypatch, n_ok):
    "Every write after the first `n_ok` writes half its bytes to the temporary file, then fails as a full disk does."
    real, count = data.atomic_write, [0]
    def writer(path, payload, durable=True):
        count[0] += 1
        if count[0] <= n_ok: return real(path, payload, durable)
        def half(f):
            if callable(payload): payload(f)
            else: f.write(b'x' * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, half, durable)
    for m in (cli, history): monkeypatch.setattr(m, 'atomic_write', writer)


@pytest.mark.parametrize('overwrite', [False, True])
def test_full_disk_loses_nothing_already_there(capsys, tmp_path, fake_training, monkeypatch, overwrite):
    assert call(capsys, 'run', '--out', tmp_path)[0] == 0
    before = snapshot(tmp_path)
    _full_disk_after(monkeypatch, 1)     # the history is saved; the report PNG hits the full disk
    code, out, err = call(capsys, 'run', '--epochs', '2', '--out', tmp_path, *(['--overwrite'] if overwrite else []))
    assert code == 1 and one_line(err), err
    assert 'No space left on device' in err and ('run.npz' if overwrite else 'run-2.npz') in err and 'free some disk space' in err
    after = snapshot(tmp_path)
    if overwrite: assert RunHistory.load(tmp_path/'run.npz').config['epochs'] == 2   # the new history, whole
    else: assert {k: after[k] for k in before} == before and RunHistory.load(tmp_path/'run-2.npz').config['epochs'] == 2
    assert not [n for n in after if n.startswith('.')]                                   # no temporary, no lock left
    RunHistory.load(tmp_path/'run.npz')                                                   # the earlier file still loads


def test_ctrl_c_while_writing_keeps_every_finished_history(capsys, tmp_path, fake_training, monkeypatch):
    real = data.atomic_write
    def interrupted(path, payload, durable=True):
        if str(path).endswith('.png'): raise KeyboardInterrupt
        return real(path, payload, durable)
    monkeypatch.setattr(cli, 'atomic_write', interrupted)
    code, out, err = call(capsys, 'demo', '--out', tmp_path)
    assert code == 130 and one_line(err) and 'while writing fine_tune.png' in err
    assert names(tmp_path) == ['fine_tune.npz', 'full.npz', 'head_only.npz']
    assert 'fine_tune.npz, head_only.npz, full.npz' in err
    for n in names(tmp_path): RunHistory.load(tmp_path/n)


@pytest.mark.parametrize('args,says', [
    (['compare', '--strategies', ','], "--strategies ',' names no strategy"),
    (['compare', '--strategies', 'full,full'], 'repeats a strategy'),
    (['compare', '--vary', 'head_depth=,'], 'write KNOB=v1,v2'),
    (['run', '--bs', '1'], 'Config.bs=1 is not allowed'),
    (['run', '--n-images', '8', '--n-valid', 'none', '--valid-pct', '0.9'], 'leaves 1 to train on'),
])
def test_more_mistakes_exit_2_and_write_nothing(capsys, tmp_path, args, says, fake_training):
    code, out, err = call(capsys, *args, '--out', tmp_path/'out')
    assert code == 2 and says in err and one_line(err), err
    assert not (tmp_path/'out').exists() and not fake_training


def test_values_that_slug_alike_get_files_of_their_own(capsys, tmp_path, fake_training):
    (tmp_path/'a'/'x').mkdir(parents=True); (tmp_path/'a_x').mkdir()
    code, out, err = call(capsys, 'compare', '--vary', f"source={tmp_path/'a'/'x'},{tmp_path/'a_x'}", '--out', tmp_path/'out')
    assert code == 0, err
    npz = [n for n in names(tmp_path/'out') if n.endswith('.npz')]
    assert len(npz) == 2
    assert sorted(RunHistory.load(tmp_path/'out'/n).config['source'] for n in npz) == sorted([str(tmp_path/'a'/'x'), str(tmp_path/'a_x')])


def test_demo_with_a_missing_pets_folder_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv('FINETUNE_LAB_PETS', str(tmp_path/'nonexistent'))
    code, out, err = call(capsys, 'demo', '--out', tmp_path/'out')
    assert code == 2 and one_line(err) and f"No such folder: {tmp_path/'nonexistent'}" in err


@pytest.mark.parametrize('case', ['garbage config.ini', 'unwritable FASTAI_HOME'])
def test_fastai_config_problems_are_named(capsys, tmp_path, monkeypatch, case):
    monkeypatch.delenv('FINETUNE_LAB_PETS', raising=False)
    if case == 'garbage config.ini':
        (tmp_path/'config.ini').write_text('[[[ not ini\n'); monkeypatch.setenv('FASTAI_HOME', str(tmp_path))
    else:
        (tmp_path/'f').write_text('x'); monkeypatch.setenv('FASTAI_HOME', str(tmp_path/'f'/'fastai'))
    fastai_cfg.cache_clear()
    try: code, out, err = call(capsys, 'demo', '--out', tmp_path/'out')
    finally: fastai_cfg.cache_clear()
    assert code in (1, 2) and one_line(err), err
    assert ('is damaged' in err) if case == 'garbage config.ini' else ('set FASTAI_HOME to a writable folder' in err)


def test_out_that_is_a_file_exits_1(capsys, tmp_path, fake_training):
    (tmp_path/'taken').write_text('x')
    code, out, err = call(capsys, 'run', '--out', tmp_path/'taken')
    assert code == 1 and one_line(err) and '--out' in err and str(tmp_path/'taken') in err and not fake_training


def test_warnings_are_one_line_without_source(capsys, tmp_path, fake_training, monkeypatch):
    import warnings
    monkeypatch.setattr(cli, 'prepare', lambda cfgs: warnings.warn("Skipped 2 file(s) in /x that could not be read as images."))
    code, out, err = call(capsys, 'run', '--out', tmp_path)
    assert code == 0 and err == "finetune-lab: warning: Skipped 2 file(s) in /x that could not be read as images.\n"


def test_unexpected_errors_are_one_line_too(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, 'prepare', lambda cfgs: {}['a bug'])
    code, out, err = call(capsys, 'run', '--out', tmp_path)
    assert code == 1 and one_line(err) and 'unexpected KeyError' in err and 'FINETUNE_LAB_DEBUG' in err


def test_show_into_the_folder_it_reads_keeps_everything(capsys, tmp_path, fake_training):
    assert call(capsys, 'run', '--out', tmp_path)[0] == 0
    before = snapshot(tmp_path)
    code, out, err = call(capsys, 'show', tmp_path/'run.npz', '--out', tmp_path)
    assert code == 0 and {k: v for k, v in snapshot(tmp_path).items() if k in before} == before
    assert names(tmp_path) == ['explain-2.txt', 'explain.txt', 'run-2.png', 'run.npz', 'run.png']


# --- counts and intervals, paired tests, seeds, logs, offline downloads ---------------------------------

def test_compare_says_win_or_tie_by_the_paired_test(capsys, tmp_path, fake_training):
    from finetune_lab.history import compare_runs
    code, out, err = call(capsys, 'compare', '--strategies', 'fine_tune,head_only,full', '--out', tmp_path)
    assert code == 0, err
    hs = {s: RunHistory.load(tmp_path/f'{s}.npz') for s in ('fine_tune', 'head_only', 'full')}
    block = out.split('paired tests on the validation photos (exact McNemar; a win needs p < 0.05; one seed of each, so a win is for these two models, not for the setting whatever the seed: --seeds 3 shows how much the seed alone moves each error):\n')[1].splitlines()[:3]
    for line, (a, b) in zip(block, [('fine_tune', 'head_only'), ('fine_tune', 'full'), ('head_only', 'full')]):
        v = compare_runs(hs[a], hs[b])
        assert line.startswith(f"  {a} vs {b}: " + dict(better=f"{a} wins", worse=f"{b} wins", tie='a tie within noise')[v.which]), line
        assert f"exact McNemar test on the same 400 photos, {v.a_only} wrong only for {a} and {v.b_only} only for {b}" in line

def test_different_photos_get_no_paired_test(capsys, tmp_path):
    for n, nv in (('a', 400), ('b', 100)): fake_history(n_valid=nv).save(tmp_path/f'{n}.npz')
    code, out, err = call(capsys, 'show', tmp_path/'a.npz', tmp_path/'b.npz', '--out', tmp_path/'out')
    assert code == 0 and 'a vs b: not the same recorded validation photos, so no paired test' in out

def test_a_multi_seed_run_prints_each_seed_and_the_mean_and_range(capsys, tmp_path, monkeypatch):
    h = fake_history(n_valid=40, seeds=3)
    monkeypatch.setattr(cli, 'prepare', lambda cfgs: None)
    monkeypatch.setattr(cli, 'run', lambda cfg, cbs=None, progress=True: h)
    code, out, err = call(capsys, 'run', '--seeds', '3', '--out', tmp_path)
    assert code == 0, err
    r = h.repeats
    each = ', '.join(f"{int(s.seed)}: {int(s.wrong)} of 40 ({100*s.error_rate:.1f} %)" for s in r.itertuples())
    e = 100*r.error_rate
    assert f"     seeds {each}; 3 seeds: mean {e.mean():.1f} %, range {e.min():.1f}–{e.max():.1f} %" in out
    assert 'note: 40 validation photos' in out

@pytest.mark.slow
def test_seeds_flag_runs_every_seed(capsys, tmp_path):
    code, out, err = call(capsys, 'run', *TINY, '--seeds', '2', '--epochs', '1', '--freeze-epochs', '0', '--out', tmp_path)
    assert code == 0, err
    h = RunHistory.load(tmp_path/'run.npz')
    assert list(h.repeats.seed) == [42, 43] and (h.repeats.n == 24).all()
    assert '  seed 42 (1 of 2)' in out and '  seed 43 (2 of 2)' in out and '\r' not in out   # a log line per seed, no bars
    assert '     seeds 42: ' in out and ', 43: ' in out and '2 seeds: mean' in out

def test_an_offline_download_is_one_clear_line(capsys, tmp_path, monkeypatch):
    "A failed Pets download is one line without the nested '<urlopen error ...>'."
    import urllib.error
    def offline(cfgs): raise urllib.error.URLError("Could not download the Oxford-IIIT Pet dataset (<urlopen error [Errno -3] "
                                                   "Temporary failure in name resolution>): check the internet connection.")
    monkeypatch.setattr(cli, 'prepare', offline)
    code, out, err = call(capsys, 'run', '--source', 'pets', '--out', tmp_path)
    assert code == 1 and one_line(err) and 'a download failed (offline?)' in err and 'urlopen' not in err
    assert '([Errno -3] Temporary failure in name resolution)' in err


# --- interrupted runs saved and marked; locks and temporaries of killed commands ----------------------------------

import signal
from fastai.callback.core import Callback
from finetune_lab import experiment
from finetune_lab.tracker import WeightChangeTracker

REAL = ['--source', 'synthetic', '--arch', 'efficientnet_lite0', '--n-images', '16', '--n-valid', '16', '--size', '32', '--bs', '8',
        '--freeze-epochs', '1', '--epochs', '3', '--quiet']


class SignalAt(Callback):
    "Send `sig` to this process after the first training batch of the unfrozen fit (fit 1), once the tracker has recorded it."
    order = WeightChangeTracker.order + 1
    def __init__(self, sig): self.sig, self.n_fit = sig, -1
    def before_fit(self): self.n_fit += 1
    def after_batch(self):
        if self.training and self.n_fit == 1 and self.epoch == 0 and self.iter == 0: signal.raise_signal(self.sig)


def signal_during_training(monkeypatch, sig):
    "Make the CLI's run() get `sig` at a known batch: after the frozen epoch and one unfrozen step."
    real = cli.run
    monkeypatch.setattr(cli, 'run', lambda cfg, cbs=None, progress=True: real(cfg, cbs=[*(cbs or []), SignalAt(sig)], progress=progress))
    return real


def assert_partial_run_saved(d):
    "`d` holds the run's files; its history is marked interrupted and has the frozen epoch and the unfrozen steps so far."
    assert names(d) == ['explain.txt', 'run.npz', 'run.png']
    h = RunHistory.load(d/'run.npz')
    assert h.interrupted and list(h.epochs.phase) == ['frozen']
    assert (h.steps.phase == 'frozen').sum() >= 1 and (h.steps.phase == 'unfrozen').sum() >= 1


@pytest.mark.parametrize('second', ['while run() cleans up', pytest.param('as run() returns', marks=pytest.mark.slow)])
def test_a_second_ctrl_c_keeps_the_partial_run(capsys, tmp_path, monkeypatch, second):
    "Two Ctrl-Cs: the first stops training, the second lands before the history is saved; the history is still saved."
    real = signal_during_training(monkeypatch, signal.SIGINT)
    if second == 'as run() returns':
        def run_then_ctrl_c(cfg, cbs=None, progress=True):
            h = real(cfg, cbs=[*(cbs or []), SignalAt(signal.SIGINT)], progress=progress)
            signal.raise_signal(signal.SIGINT)
            return h
        monkeypatch.setattr(cli, 'run', run_then_ctrl_c)
    else:
        release = experiment.release_memory
        monkeypatch.setattr(experiment, 'release_memory', lambda: (signal.raise_signal(signal.SIGINT), release()))
    code, out, err = call(capsys, 'run', *REAL, '--out', tmp_path)
    assert code == 130 and one_line(err) and 'interrupted: 1 of 1 runs written' in err and 'the last one partial' in err, err
    assert 'wrote 3 files' in out and 'run.npz' in out
    assert_partial_run_saved(tmp_path)


class Unhandled(Exception): "SIGTERM reached the handler the test set: the CLI had none of its own."


@pytest.fixture
def sigterm_guard():
    "Without a handler of the CLI's own, SIGTERM would end pytest itself: this one makes it an exception instead."
    def unhandled(sig, frame): raise Unhandled()
    old = signal.signal(signal.SIGTERM, unhandled)
    yield
    signal.signal(signal.SIGTERM, old)


def test_sigterm_while_training_saves_the_partial_run(capsys, tmp_path, monkeypatch, sigterm_guard):
    signal_during_training(monkeypatch, signal.SIGTERM)
    code, out, err = call(capsys, 'run', *REAL, '--out', tmp_path)
    assert code == 143 and one_line(err) and 'terminated (SIGTERM): 1 of 1 runs written' in err, err
    assert_partial_run_saved(tmp_path)
    assert signal.getsignal(signal.SIGTERM).__name__ == 'unhandled'   # main() gives back the handler it found


def test_sigterm_while_starting_is_one_line(monkeypatch, capsys, sigterm_guard):
    from finetune_lab import console
    def import_hit_by_sigterm(): signal.raise_signal(signal.SIGTERM); raise AssertionError('not interrupted')
    monkeypatch.setattr(console, '_load_cli', import_hit_by_sigterm)
    assert console.start() == 143
    err = capsys.readouterr().err
    assert one_line(err) and 'terminated (SIGTERM) while starting: nothing was trained or written' in err, err


def test_sigterm_while_writing_finishes_the_file_first(capsys, tmp_path, fake_training, monkeypatch, sigterm_guard):
    real = data.atomic_write
    def terminated_midway(path, payload, durable=True):
        if str(path).endswith('.png'): signal.raise_signal(signal.SIGTERM)   # held until this file is whole
        return real(path, payload, durable)
    monkeypatch.setattr(cli, 'atomic_write', terminated_midway)
    code, out, err = call(capsys, 'run', '--out', tmp_path)
    assert code == 143 and one_line(err) and 'terminated (SIGTERM)' in err and 'run.npz, run.png' in err, err
    assert names(tmp_path) == ['run.npz', 'run.png']


def leave_behind(out, die:bool):
    """A child process (forked: nothing to import) claims `out` as the CLI does and starts writing run.npz; with `die` it is
    killed (SIGKILL) there, leaving its lock and temporary file; else it waits, alive, until the returned function is called."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            o = cli.Outputs(out, ['run']).__enter__()
            def stuck(f):
                f.write(b'half a history'); f.flush()
                if die: os.kill(os.getpid(), signal.SIGKILL)
                os.read(r, 1)                           # alive until the parent says
                os._exit(0)
            data.atomic_write(o.path('run', '.npz'), stuck)
        finally: os._exit(1)
    os.close(r)
    def done():
        os.close(w)
        return os.waitpid(pid, 0)[1]
    if die: assert os.WTERMSIG(done()) == signal.SIGKILL
    else:
        import time
        while not [p for p in Path(out).iterdir() if p.name.endswith('.tmp')]:   # waits for a file, not a clock
            assert os.waitpid(pid, os.WNOHANG) == (0, 0), "the child ended before it began writing"
            time.sleep(0.01)
    return done


def hidden(d): return sorted(p.name for p in Path(d).iterdir() if p.name.startswith('.'))


def test_a_killed_command_leaves_nothing_that_misleads_the_next(capsys, tmp_path, fake_training):
    leave_behind(tmp_path, die=True)
    assert [n for n in hidden(tmp_path) if n.endswith('.lock')] and [n for n in hidden(tmp_path) if n.endswith('.tmp')]
    code, out, err = call(capsys, 'run', '--out', tmp_path)
    assert code == 0, err
    assert names(tmp_path) == ['explain.txt', 'run.npz', 'run.png']           # the plain names: the folder held no earlier run
    assert 'earlier run' not in out and 'numbered' not in out
    assert hidden(tmp_path) == []                                               # the stale lock and temporary are gone


def test_a_live_command_keeps_its_lock_and_temporary(capsys, tmp_path, fake_training):
    done = leave_behind(tmp_path, die=False)
    try:
        before = hidden(tmp_path)
        code, out, err = call(capsys, 'run', '--out', tmp_path)
        assert code == 0, err
        assert names(tmp_path) == before + ['explain-2.txt', 'run-2.npz', 'run-2.png']
        assert 'earlier run' not in out and 'another finetune-lab command is writing' in out
    finally: done()


@pytest.fixture
def read_only(tmp_path):
    "A folder nothing may be written into (as root, where chmod stops nothing, with the immutable flag; else skip)."
    d = tmp_path/'ro'; d.mkdir(); d.chmod(0o555)
    chattr = False
    try: (d/'probe').touch()
    except OSError: pass
    else:
        (d/'probe').unlink()
        chattr = shutil.which('chattr') and subprocess.run(['chattr', '+i', d], capture_output=True).returncode == 0
        if not chattr: d.chmod(0o755); pytest.skip("cannot make a read-only folder here (root, and no chattr +i)")
    yield d
    if chattr: subprocess.run(['chattr', '-i', d])
    d.chmod(0o755)


@pytest.mark.parametrize('overwrite', [True, False])
def test_a_read_only_out_fails_before_training(capsys, read_only, fake_training, overwrite):
    code, out, err = call(capsys, 'run', '--out', read_only, *(['--overwrite'] if overwrite else []))
    assert code == 1 and one_line(err) and f'--out {read_only}: cannot write there' in err, err
    assert not fake_training and list(read_only.iterdir()) == []
