"""Time per training step of fastai's distributed training (`learn.distrib_ctx`, 2 CPU processes, gloo) against one
process on the same global batch, with the WeightChangeTracker on. EfficientNet-Lite0 (random init: timing
only) at 128 px, global batch 16 (8 per process), random images.

    python bench/ddp_step_time.py                 # runs both and prints one line each (median ms/step over steps 3..)

The 2-process run is started with torch's launcher, as `accelerate launch` starts it on GPUs; on CPUs fastai's
DistributedDL needs the two shims of tests/ddp_worker.py (imported from there)."""
import json, os, subprocess, sys, time
from pathlib import Path
HERE = Path(__file__).resolve().parent
STEPS, SIZE, GLOBAL_BS = 12, 128, 16

def worker(mode):
    sys.path.insert(0, str(HERE.parent/'tests'))
    import importlib; importlib.import_module("ddp_worker")   # the CPU shims for fastai's DistributedDL (imported for their effect)
    import statistics, torch
    from torch.utils.data import TensorDataset
    from fastai.vision.all import DataLoaders, vision_learner, CrossEntropyLossFlat, Callback, set_seed, rank_distrib, num_distrib
    from finetune_lab.models import efficientnet_lite0
    from finetune_lab.tracker import WeightChangeTracker
    class StepTimes(Callback):
        def before_fit(self): self.ts = []
        def after_batch(self):
            if self.training: self.ts.append(time.perf_counter())
    set_seed(0)
    n = STEPS*GLOBAL_BS
    x, y = torch.randn(n, 3, SIZE, SIZE), torch.randint(0, 2, (n,))
    bs = GLOBAL_BS//max(num_distrib(), 1)
    dls = DataLoaders.from_dsets(TensorDataset(x, y), TensorDataset(x[:GLOBAL_BS], y[:GLOBAL_BS]), bs=bs, device='cpu', shuffle=False)
    learn = vision_learner(dls, efficientnet_lite0, n_out=2, pretrained=False, loss_func=CrossEntropyLossFlat())
    learn.unfreeze()
    st = StepTimes()
    with learn.no_bar(), learn.no_logging():
        if mode == 'ddp':
            with learn.distrib_ctx(sync_bn=False): learn.fit(1, 1e-3, cbs=[WeightChangeTracker(), st])
        else: learn.fit(1, 1e-3, cbs=[WeightChangeTracker(), st])
    dts = [b - a for a, b in zip(st.ts, st.ts[1:])][2:]
    if rank_distrib() == 0:
        print(json.dumps(dict(mode=mode, processes=max(num_distrib(), 1), threads=torch.get_num_threads(), per_process_bs=bs,
                              ms_per_step=round(statistics.median(dts)*1e3, 1), steps_timed=len(dts))), flush=True)

def main():
    import common
    print(common.machine(), flush=True)
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(HERE.parent), os.environ.get('PYTHONPATH', '')]), 'ACCELERATE_USE_CPU': '1'}
    me = str(Path(__file__).resolve())
    subprocess.run([sys.executable, me, 'single'], env=env, check=True)
    subprocess.run([sys.executable, me, 'single'], env={**env, 'OMP_NUM_THREADS': '1'}, check=True)
    subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', me, 'ddp'],
                   env={**env, 'OMP_NUM_THREADS': '1'}, check=True)

if __name__ == '__main__':
    if len(sys.argv) > 1: worker(sys.argv[1])
    else: main()
