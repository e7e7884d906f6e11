"""Run by tests/test_distributed.py: fine_tune a tiny learner with a `WeightChangeTracker`, either inside fastai's
`distrib_ctx` on 2 CPU processes (`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 ddp_worker.py ddp
OUT`) or in one process on the same global batches (`python ddp_worker.py single OUT`). `kill0 OUT` and `kill1 OUT` run
as `ddp` but SIGKILL rank 0 or rank 1 after its 5th training batch (the unfrozen fit's second)."""
import json, os, signal, sys, warnings
from datetime import timedelta
from pathlib import Path
warnings.filterwarnings('ignore')
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import TensorDataset
from fastcore.basics import patch
from fastai.vision.all import DataLoaders, Callback, TrainEvalCallback, rank_distrib
from fastai.distributed import DistributedDL
from finetune_lab.tracker import WeightChangeTracker
from finetune_lab.models import NORM_TYPES, tiny_learner

# fastai's DistributedTrainer is written for GPUs (nccl): it broadcasts the batch order as a CUDA tensor and asks DDP for
# `.device`, which DDP sets only on a GPU. These two shims let the same code path run on CPU processes (gloo).
DistributedDataParallel.device = torch.device('cpu')
@patch
def _broadcast(self:DistributedDL, t, rank):
    t = torch.tensor(t, dtype=torch.long); torch.distributed.broadcast(t, rank); return t.tolist()

N_TRAIN, BS = 24, 4     # per process: 12 images, 3 batches of 4; together 3 global batches of 8

class BNEval(Callback):
    "All norm layers in eval mode: each process then normalises its half-batch as one process does the whole (DDP on a CPU has no SyncBatchNorm)."
    run_after = TrainEvalCallback
    def before_train(self):
        for m in self.learn.model.modules():
            if isinstance(m, NORM_TYPES): m.eval()

class HalfLoss(Callback):
    "The loss of the first `n` images of each training batch: what rank 0 sees of a global batch."
    def __init__(self, n): self.n, self.losses = n, []
    def after_loss(self):
        if self.training: self.losses.append(float(self.learn.loss_func(self.pred[:self.n], self.yb[0][:self.n])))

def ordered_learner(order, bs):
    "The package's tiny learner (seed 0: its 32 images, 24 to train), its training images in `order`, unshuffled, in batches of `bs`."
    learn = tiny_learner(cbs=BNEval())
    (x, y), valid = learn.dls.train_ds.tensors, learn.dls.valid_ds
    assert len(x) == N_TRAIN
    learn.dls = DataLoaders.from_dsets(TensorDataset(x[order], y[order]), valid, bs=bs, device='cpu', shuffle=False, drop_last=False)
    return learn

class KillAt(Callback):
    "SIGKILL this process after its `n`-th training batch (counted over all fits): a rank dying at a known point."
    def __init__(self, n): self.n, self.i = n, 0
    def after_batch(self):
        if not self.training: return
        self.i += 1
        if self.i == self.n: os.kill(os.getpid(), signal.SIGKILL)

def main(mode, out):
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    if mode in ('kill0', 'kill1'):
        from accelerate.utils import InitProcessGroupKwargs
        learn = ordered_learner(torch.arange(N_TRAIN), BS)
        cbs = [WeightChangeTracker(fname=out/'history.npz')] + ([KillAt(5)] if rank_distrib() == int(mode[-1]) else [])
        # a stated timeout: a rank left waiting on a dead one gives up after a minute, not torch's default 30
        with learn.no_bar(), learn.distrib_ctx(sync_bn=False, kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(minutes=1))]):
            learn.fine_tune(1, base_lr=1e-2, cbs=cbs)
    elif mode == 'ddp':
        learn = ordered_learner(torch.arange(N_TRAIN), BS)   # rank r gets images 12r..12r+11, in order (fastai's DistributedDL)
        tr = WeightChangeTracker(fname=out/'history.npz')
        with learn.no_bar(), learn.distrib_ctx(sync_bn=False): learn.fine_tune(1, base_lr=1e-2, cbs=tr)
        (out/f'rank{rank_distrib()}.json').write_text(json.dumps(dict(steps=len(tr.history.steps), took_reference=tr._ref is not None)))
    else:   # global batch i = rank 0's batch i, then rank 1's
        half = N_TRAIN//2
        order = torch.cat([torch.cat([torch.arange(i, i+BS), torch.arange(half+i, half+i+BS)]) for i in range(0, half, BS)])
        learn = ordered_learner(order, 2*BS)
        hl = HalfLoss(BS)
        with learn.no_bar(): learn.fine_tune(1, base_lr=1e-2, cbs=[tr := WeightChangeTracker(fname=out/'single.npz'), hl])
        (out/'half_loss.json').write_text(json.dumps(hl.losses))

if __name__ == '__main__': main(*sys.argv[1:3])
