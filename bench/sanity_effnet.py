"""Real-data sanity check of the offline backbone (issue: foundation).

fine_tune(2, freeze_epochs=1) with pretrained efficientnet_lite0 on 400 images of
../shared/data/pets_more at 128 px (seed 42, 20 % valid). A correctly wired backbone gets
error_rate 7.5-10 % here; un-normalised inputs give ~18 %. Usage: python bench/sanity_effnet.py
"""
import sys, time, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
from fastai.vision.all import set_seed
from finetune_lab.data import pets_dls
from finetune_lab.models import build_learner

folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]/'shared'/'data'/'pets_more')
set_seed(42, reproducible=True)
t = time.time()
dls = pets_dls(folder, size=128, n_images=400, seed=42, valid_pct=0.2, verbose=False)
learn = build_learner(dls, 'efficientnet_lite0')
with learn.no_bar(): learn.fine_tune(2, freeze_epochs=1)
err = float(learn.recorder.values[-1][2])
print(f"efficientnet_lite0, 400 images of {folder.name} at 128 px: final error_rate {err:.4f} "
      f"({len(dls.valid_ds)} valid images), {time.time()-t:.0f} s")
sys.exit(0 if err <= 0.15 else 1)
