"""Real-data sanity check of the offline backbone (issue: foundation).

fine_tune(2, freeze_epochs=1) with pretrained efficientnet_lite0 on 400 images of
../shared/data/pets_more at 128 px (seed 42, 20 % valid, bs 32), twice: with fastai's BatchNorm
behaviour (batch statistics while training) and with `keep_bn_stats=True` (the body's BatchNorm
keeps its pretrained statistics, as Keras' EfficientNet fine-tuning guide does). The second must
reach error_rate <= 0.15. Usage: python bench/sanity_effnet.py [FOLDER]
"""
import sys, time, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
from fastai.vision.all import set_seed
from finetune_lab.data import pets_dls
from finetune_lab.models import build_learner

folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]/'shared'/'data'/'pets_more')
errs = {}
for keep in (False, True):
    set_seed(42, reproducible=True)
    t = time.time()
    dls = pets_dls(folder, size=128, n_images=400, seed=42, valid_pct=0.2, verbose=False)
    learn = build_learner(dls, 'efficientnet_lite0', keep_bn_stats=keep)
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(2, freeze_epochs=1)
    errs[keep] = [round(float(v[2]), 4) for v in learn.recorder.values]
    print(f"efficientnet_lite0, keep_bn_stats={keep}: error_rate per epoch {errs[keep]} "
          f"({len(dls.valid_ds)} valid images of {folder.name}, 128 px), {time.time()-t:.0f} s", flush=True)
sys.exit(0 if errs[True][-1] <= 0.15 else 1)
