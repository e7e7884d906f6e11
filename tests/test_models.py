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
