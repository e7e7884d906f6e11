"Tests of the `finetune-lab` command line: every command writes its files, mistakes exit 2 in one line, the console script runs."
import shutil, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from finetune_lab import cli
from finetune_lab.cli import main, flag
from finetune_lab.strategies import Config
from finetune_lab.history import RunHistory
from finetune_lab.models import WeightsUnavailableError
from finetune_lab.plots import synthetic_history

TINY = ['--source', 'synthetic', '--arch', 'efficientnet_lite0', '--n-images', '24', '--size', '64']


def call(capsys, *args):
    "Run `finetune-lab *args` in-process: (exit code, stdout, stderr)."
    code = main([str(a) for a in args])
    o = capsys.readouterr()
    return code, o.out, o.err


def names(d): return sorted(p.name for p in Path(d).iterdir())


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


def test_run_writes_report_history_and_words_then_show_redraws_it(capsys, tmp_path):
    code, out, err = call(capsys, 'run', *TINY, '--freeze-epochs', '1', '--epochs', '1', '--head-depth', '2', '--out', tmp_path)
    assert code == 0, err
    assert names(tmp_path) == ['explain.txt', 'run.npz', 'run.png']
    assert 'phase: frozen (fit 0, 1 epoch)' in out and 'phase: unfrozen (fit 1, 1 epoch)' in out
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
        return synthetic_history(freeze_epochs=cfg.freeze_epochs, steps_per_epoch=4, interrupt_at=.5 if len(ran) == 2 else None)
    monkeypatch.setattr(cli, 'prepare', lambda cfgs: None)
    monkeypatch.setattr(cli, 'run', fake_run)
    code, out, err = call(capsys, 'compare', '--vary', 'freeze_epochs=0,1,2', '--quiet', '--out', tmp_path)
    assert code == 130 and ran == [0, 1]
    assert 'interrupted: 2 of 3 runs written' in out
    assert 'freeze_epochs=1.npz' in names(tmp_path) and 'freeze_epochs=2.npz' not in names(tmp_path)
    assert RunHistory.load(tmp_path/'freeze_epochs=1.npz').interrupted


def test_show_names_files_apart_when_stems_clash(capsys, tmp_path):
    for d, s in (('a', 'fine_tune'), ('b', 'full')):
        (tmp_path/d).mkdir(); synthetic_history(s, steps_per_epoch=3).save(tmp_path/d/'run.npz')
    code, out, err = call(capsys, 'show', tmp_path/'a'/'run.npz', tmp_path/'b'/'run.npz', '--out', tmp_path/'out')
    assert code == 0, err
    assert names(tmp_path/'out') == ['compare.png', 'explain.txt', 'run_1.png', 'run_2.png']


def test_console_script_is_installed_and_answers_help():
    exe = shutil.which('finetune-lab')
    if exe is None: pytest.skip("the finetune-lab console script is not on PATH: run `pip install -e .` first")
    r = subprocess.run([exe, '--help'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and 'demo' in r.stdout and 'compare' in r.stdout and 'show' in r.stdout
    r = subprocess.run([exe, 'run', '--size', '8'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == ''
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and 'Config.size=8 is not allowed' in r.stderr
