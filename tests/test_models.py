"Models on real images: the offline EfficientNet-Lite0 backbone is wired to its ImageNet weights and learns Pets."
import os, subprocess, sys
from pathlib import Path
import pytest
from finetune_lab.models import zero_shot_cat_accuracy

ROOT = Path(__file__).resolve().parents[1]


def test_effnet_zero_shot_tells_cats_from_dogs(pets_sample):
    "Its ImageNet classes alone (cats 281-285 vs dogs 151-268) sort the shared real images: weights and normalisation are right."
    assert zero_shot_cat_accuracy(pets_sample/'images') >= 0.85


@pytest.mark.skipif(os.environ.get('FINETUNE_LAB_SLOW') != '1', reason="minutes on a CPU: set FINETUNE_LAB_SLOW=1 to run it")
def test_effnet_fine_tune_sanity(pets_more):
    "fine_tune(2, freeze_epochs=1) on 400 real images at 128 px reaches error_rate <= 0.15 (keep_bn_stats=True)."
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'sanity_effnet.py'), str(pets_more)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(os.environ.get('FINETUNE_LAB_SLOW') != '1', reason="about a minute on a CPU: set FINETUNE_LAB_SLOW=1 to run it")
def test_default_run_learns_real_pets(pets_sample):
    "The default Config on the bundled set, seeds 0-2: the median model calls <= 5 % of unseen original photos wrongly."
    sys.path.insert(0, str(ROOT/'bench'))
    from defaults_grid import trial
    rows = [trial(seed) for seed in range(3)]
    med = lambda k: sorted(r[k] for r in rows)[1]
    assert med('unseen_error') <= 0.05 and med('unseen_cat') <= 0.10 and med('unseen_dog') <= 0.10, rows
    assert med('valid_error') <= 0.08, rows
    assert all(r['valid_error'] < r['valid_majority'] for r in rows), rows
