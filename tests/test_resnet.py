"""fastbook's resnet34, end to end, offline: a checkpoint placed at torch's hub cache path (a random init saved with
torch.save, in a temporary TORCH_HOME) is what every user with internet gets after the first download. `arch='auto'`
must pick it, its param groups must be fastai's, and a run, the tracker, the report, `explain`, the CLI and the Lab
must work with it. A damaged file at that path must say so, and what to do."""
import dataclasses, torch, torchvision
import numpy as np, pytest
from fastai.vision.all import model_meta, params
from fastcore.all import L
import finetune_lab.models as fm
from finetune_lab.models import weights_path, weights_available, pretrained_state, build_learner, describe_groups, WeightsUnavailableError
from finetune_lab.experiment import Config, run_learner, get_dls
from finetune_lab.explain import explain, WEIGHT_KINDS
from finetune_lab.plots import plot_report, fig_to_png
from finetune_lab.cli import main
from finetune_lab.lab import Lab
from finetune_lab.history import RunHistory

PNG = b'\x89PNG\r\n\x1a\n'
# a few of the bundled real photos at 64 px: 2 batches to train on, 1 to validate
TINY = dict(source='bundled', n_images=24, size=64, bs=8, freeze_epochs=1, epochs=1)
if 'n_valid' in {f.name for f in dataclasses.fields(Config)}: TINY['n_valid'] = 8
CLI_TINY = [a for k, v in TINY.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def save_resnet34(path):
    "torchvision's resnet34 with random weights, saved where torch's hub would have downloaded the ImageNet ones."
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = torchvision.models.resnet34(weights=None).state_dict()
    torch.save(sd, path)
    return sd


@pytest.fixture(scope='module')
def torch_home(tmp_path_factory):
    "A TORCH_HOME holding a resnet34 checkpoint, for every test of this module."
    home = tmp_path_factory.mktemp('torch_home')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('TORCH_HOME', str(home))
        assert torch.hub.get_dir() == str(home/'hub'), "torch.hub.get_dir() does not follow TORCH_HOME (torch.hub.set_dir was called?)"
        assert not weights_available('resnet34')
        assert Config(arch='auto').resolved().arch == 'efficientnet_lite0'   # no file: the backbone that ships with pip
        sd = save_resnet34(weights_path('resnet34'))
        mp.setattr(fm, '_STATE_CACHE', {})   # nothing loaded before this module leaks in, nothing of ours leaks out
        yield home, sd


@pytest.fixture(scope='module')
def tiny_run(torch_home):
    "One fine_tune run (1 frozen + 1 unfrozen epoch) of arch='auto' with the tracker: (learner, history)."
    return run_learner(Config(**TINY), progress=False)


def test_auto_picks_resnet34_from_the_hub_cache(torch_home):
    home, _ = torch_home
    assert weights_path('resnet34').is_relative_to(home) and weights_available('resnet34')
    r = Config(arch='auto').resolved()
    assert r.arch == 'resnet34'
    assert r.keep_bn_stats is False   # 'auto': fastai's default for resnets (KeepBNStats only for efficientnet_lite0)


def test_weights_come_from_that_file(torch_home, tiny_run):
    _, sd = torch_home
    learn = build_learner(get_dls(Config(**TINY)), 'resnet34')
    assert torch.equal(learn.model[0][0].weight, sd['conv1.weight'])      # the body starts from the saved checkpoint
    assert torch.equal(learn.model[0][7][2].conv2.weight, sd['layer4.2.conv2.weight'])


def test_param_groups_are_fastais_resnet_split(torch_home):
    learn = build_learner(get_dls(Config(**TINY)), 'resnet34')
    ids = lambda groups: [[id(p) for p in g] for g in groups]
    ours = ids(learn.opt.param_lists)
    assert len(ours) == 3
    assert ours == ids(model_meta[torchvision.models.resnet34]['split'](learn.model))   # fastai's own resnet splitter
    body, head = learn.model
    assert ours == ids(L(body[:6], body[6:], head).map(params))                      # body[:6] | body[6:] | head
    assert describe_groups(learn).blocks.tolist() == ['conv1, bn1, layer1, layer2', 'layer3, layer4', 'head']


def test_run_tracker_report_and_explain_name_resnet34(tiny_run):
    learn, h = tiny_run
    assert h.config['arch'] == 'resnet34' and h.config['keep_bn_stats'] is False and not h.interrupted
    assert len(h.epochs) == 2 and np.isfinite(h.epochs.error_rate).all()
    assert {'layer1', 'layer4'} <= {n.split('.')[0] for n in h.layers.name}   # the tracker names resnet's blocks
    frozen = (h.steps.phase == 'frozen').to_numpy()
    assert frozen.any() and (~frozen).any()
    body_w = (h.layers.group < 2).to_numpy() & h.layers.kind.isin(WEIGHT_KINDS).to_numpy()
    assert (h.change[frozen][:, body_w] == 0).all()           # frozen: no body conv weight moved at all
    assert (h.change[-1, body_w] > 0).all()                   # unfrozen: every one of them moved
    fig = plot_report(h)
    assert 'arch=resnet34' in fig.get_suptitle()
    assert fig_to_png(fig).startswith(PNG)
    words = explain(h)
    assert 'frozen' in words and len(words.split('\n\n')) > 1


@pytest.mark.slow
def test_cli_run_with_resnet34(torch_home, tmp_path, capsys):
    code = main(['run', *CLI_TINY, '--out', str(tmp_path), '--quiet'])
    out = capsys.readouterr().out
    assert code == 0, out
    assert 'backbone: resnet34 (ImageNet weights)' in out
    assert (tmp_path/'run.npz').exists() and (tmp_path/'run.png').read_bytes().startswith(PNG)
    assert RunHistory.load(tmp_path/'run.npz').config['arch'] == 'resnet34'
    assert 'This run (fine_tune)' in (tmp_path/'explain.txt').read_text()


@pytest.mark.slow
def test_lab_with_resnet34(torch_home, tmp_path):
    lab = Lab(run_dir=tmp_path, **TINY)                      # arch='auto'
    assert lab.controls['arch'].value == 'resnet34'
    assert lab.controls['arch'].label == 'resnet34'          # not "(weights not on this machine)"
    assert lab.controls['keep_bn_stats'].value is False
    assert 'backbone: resnet34' in lab.data_line.value
    lab.run_button.click()
    assert lab.wait(300), "the run did not finish"
    assert lab.error is None, lab.status.value
    assert lab.runs[0].config['arch'] == 'resnet34' and bytes(lab.report.value).startswith(PNG)


@pytest.fixture
def damaged_home(tmp_path, monkeypatch):
    "A fresh TORCH_HOME and an empty weights cache; the test writes the damaged file."
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setattr(fm, '_STATE_CACHE', {})
    p = weights_path('resnet34')
    p.parent.mkdir(parents=True)
    return p


def truncated(p): save_resnet34(p); p.write_bytes(p.read_bytes()[:1_000_000])   # a download cut short
def garbage(p): p.write_bytes(b'<html>captive portal</html>')
def other_tensors(p): torch.save(torchvision.models.resnet18(weights=None).state_dict(), p)


@pytest.mark.parametrize('damage', [truncated, garbage, other_tensors])
def test_damaged_checkpoint_says_so(damaged_home, damage):
    damage(damaged_home)
    assert Config(arch='auto').resolved().arch == 'resnet34'   # the file is there, so 'auto' tries it
    with pytest.raises(WeightsUnavailableError) as e: pretrained_state('resnet34')
    msg = str(e.value)
    assert f'{damaged_home} is damaged' in msg and 'Delete that file' in msg and "arch='efficientnet_lite0'" in msg
    assert 'not cached' not in msg and 'copy the file' not in msg
    assert 'resnet34' not in fm._STATE_CACHE                   # nothing half-read is kept: after deleting, it loads again


def test_damaged_checkpoint_through_the_cli(damaged_home, tmp_path, capsys):
    garbage(damaged_home)
    code = main(['run', *CLI_TINY, '--out', str(tmp_path/'out'), '--quiet'])
    err = capsys.readouterr().err
    assert code == 2   # the CLI's code for input the user must fix (finetune_lab.cli.failure)
    assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err
    assert err.startswith('finetune-lab: error: ') and f'{damaged_home} is damaged' in err and 'Delete that file' in err
