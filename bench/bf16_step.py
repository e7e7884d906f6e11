"""bf16 autocast on the CPU: one training step of efficientnet_lite0 (channels_last, bs 32, 128 px), fp32 vs bf16.

The issue allows bf16 autocast on a CPU only if it is >= 1.3x faster with the same error_rate. This times plain
training steps (forward under `torch.autocast('cpu', dtype=torch.bfloat16)`, loss in float32, backward, SGD step),
fp32 and bf16 interleaved, median over repetitions. (`channels_last.py --bf16` times the same inside fastai, but a bf16
step takes ~15 s on a CPU without native bf16, so its 5 x 5 fits take most of an hour.)
If bf16 is slower, error_rate is not worth measuring: bf16 is not adopted.

Usage: python bench/bf16_step.py [--reps 3] [--arch tf_efficientnet_lite0]
"""
import argparse, time
import torch, timm
from common import header, median

def main(a):
    header("bf16 autocast on CPU: training step time fp32 vs bf16")
    flags = open('/proc/cpuinfo').read()
    print(f"# CPU bf16 support: avx512_bf16 {'avx512_bf16' in flags}, amx_bf16 {'amx_bf16' in flags}", flush=True)
    m = timm.create_model(a.arch).to(memory_format=torch.channels_last)
    x = torch.randn(a.bs, 3, a.size, a.size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (a.bs,))
    opt = torch.optim.SGD(m.parameters(), 1e-3)
    def step(bf16):
        t = time.perf_counter()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16): out = m(x)
        torch.nn.functional.cross_entropy(out.float(), y).backward(); opt.step(); opt.zero_grad()
        return time.perf_counter() - t
    step(False); step(True)  # warm-up
    ts = {False: [], True: []}
    for r in range(a.reps):
        for bf in ((False, True) if r % 2 == 0 else (True, False)): ts[bf].append(step(bf))
        print(f"rep {r}: fp32 {ts[False][-1]:.2f} s  bf16 {ts[True][-1]:.2f} s", flush=True)
    f, b = median(ts[False]), median(ts[True])
    print(f"{a.arch} bs {a.bs} {a.size} px: fp32 {f:.2f} s/step, bf16 {b:.2f} s/step: bf16 speed-up {f/b:.2f}x "
          f"({'>= 1.3: check error_rate' if f/b >= 1.3 else 'below 1.3: not adopted'})")

if __name__ == '__main__':
    p = argparse.ArgumentParser(); p.add_argument('--reps', type=int, default=3)
    p.add_argument('--arch', default='tf_efficientnet_lite0'); p.add_argument('--bs', type=int, default=32)
    p.add_argument('--size', type=int, default=128)
    main(p.parse_args())
