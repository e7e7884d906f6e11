"""Proposed tracker change, measured: skip parameters that cannot have moved (frozen, never given a gradient).

`WeightChangeTracker._device_row` now runs ~7 foreach passes over *every* tracked parameter each step. While the body
is frozen (fine_tune's first phase) most of them cannot move: requires_grad is False and they have no .grad, so the
optimizer skips them. The variant below (monkeypatched, same outputs) keeps per-parameter squared norms and updates
them only for parameters that can move; the per-layer sums are formed from the cached values.

1. Equality: fine_tune 1+1 on a tiny synthetic set, tracked with the library tracker and with the variant, on two
   learners with identical starting weights and seeds: max |difference| of change / update / bn_stats.
2. Cost: the tracker's after_batch CPU time per step (library vs variant), frozen and unfrozen, interleaved, as a
   share of the untracked step's CPU time (same as tracker_overhead.py's "direct" ratio).

Usage: python bench/tracker_skip_frozen.py [--reps 5] [--arch efficientnet_lite0]
"""
import argparse, time
import numpy as np, torch
from common import header, median, step_timer, NoValidate
from finetune_lab.strategies import Config, get_dls, _reseed
from finetune_lab.models import build_learner
from finetune_lab.tracker import WeightChangeTracker, relative

def _sq(ts): return torch.stack([t.float() for t in torch._foreach_norm(ts)])**2

@torch.no_grad()
def device_row_skip_frozen(self):
    "As `_device_row`, with the foreach passes over the parameters that can move only."
    n, idx, P = len(self._mods), self._pidx, len(self._params)
    if getattr(self, '_sq_ref_for', None) is not self._ref:  # a new reference: start the per-param caches
        self._sq_ref_for, self._sq_chg = self._ref, torch.zeros(P, device=idx.device)
        self._sq_cur = _sq(self._prev)  # `prev` holds the weights of the last recorded step
    live = [i for i, p in enumerate(self._params) if p.requires_grad or p.grad is not None]
    sq_upd, sq_cur = torch.zeros(P, device=idx.device), self._sq_cur.clone()
    if live:
        L = torch.tensor(live, device=idx.device)
        ps, prev, ref = [self._params[i] for i in live], [self._prev[i] for i in live], [self._ref[i] for i in live]
        sq_cur[L] = _sq(ps)
        torch._foreach_sub_(prev, ps); sq_upd[L] = _sq(prev)
        torch._foreach_copy_(prev, ps); torch._foreach_sub_(prev, ref); self._sq_chg[L] = _sq(prev)
        torch._foreach_copy_(prev, ps)
    agg = lambda sq: torch.zeros(n, device=sq.device).index_add_(0, idx, sq).sqrt()
    update, change = relative(agg(sq_upd), self._prev_norm), relative(agg(self._sq_chg), self._ref_norm)
    self._prev_norm, self._sq_cur = agg(sq_cur), sq_cur
    bn = torch.full_like(change, float('nan'))
    if self._bufs:
        from finetune_lab.tracker import diff_norms
        bn = torch.where(self._has_bn, relative(diff_norms(self._bufs, self._bn_ref, self._bidx, n), self._bn_ref_norm), bn)
    loss = torch.as_tensor(self.learn.loss).detach().float().mean().reshape(1).to(change.device)
    return torch.cat([change, update, bn, loss])

LIB_ROW = WeightChangeTracker._device_row
class SkipFrozenTracker(WeightChangeTracker):
    _device_row = device_row_skip_frozen

class Timed:
    "Mixin: note the CPU time of each training after_batch."
    def before_fit(self): self.cost = []; super().before_fit()
    def after_batch(self):
        c = time.process_time(); super().after_batch()
        if self.training: self.cost.append(time.process_time() - c)
class TimedLib(Timed, WeightChangeTracker): pass
class TimedSkip(Timed, SkipFrozenTracker): pass

def equality(arch):
    cfg = Config(source='synthetic', arch=arch, n_images=24, size=64, bs=8)
    hs = []
    for cls in (WeightChangeTracker, SkipFrozenTracker):
        _reseed(get_dls(cfg), 42)  # as run() does: same head init, same batch order
        learn = build_learner(get_dls(cfg), arch); tr = cls()
        learn.add_cb(tr)
        with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, freeze_epochs=1)
        hs.append(tr.history)
    a, b = hs
    d = {k: np.nanmax(np.abs(getattr(a, k) - getattr(b, k))) for k in ('change', 'update', 'bn_stats')}
    print(f"equality ({len(a.steps)} steps, fine_tune 1+1): max |diff| " + ', '.join(f"{k} {v:.2e}" for k, v in d.items())
          + f"; largest change {np.nanmax(a.change):.3e}", flush=True)

def cost(learn, frozen, cls):
    learn.freeze() if frozen else learn.unfreeze()
    tm, tr = step_timer(), (cls() if cls else None)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4, cbs=tm + [NoValidate()] + ([tr] if tr else []))
    return median(tm[0].cpu[1:]), (median(tr.cost[1:]) if tr else 0.)

def main(a):
    header("Proposed tracker change: skip parameters that cannot move")
    equality(a.arch)
    cfg = Config(source='auto', arch=a.arch, pretrained=a.arch != 'resnet34').resolved()
    learn = build_learner(get_dls(cfg), a.arch, pretrained=cfg.pretrained)
    for phase in ('frozen', 'unfrozen'):
        res = {k: [] for k in ('untracked', 'library', 'skip_frozen')}
        for r in range(a.reps):
            ks = list(res) if r % 2 == 0 else list(res)[::-1]
            for k in ks: res[k].append(cost(learn, phase == 'frozen', dict(untracked=None, library=TimedLib, skip_frozen=TimedSkip)[k]))
        base = [u for u, _ in res['untracked']]
        for k in ('library', 'skip_frozen'):
            rs = [1 + c/b for (_, c), b in zip(res[k], base)]
            print(f"{a.arch} {phase:8s} {k:11s} tracker after_batch {median([c for _, c in res[k]])*1e3:6.2f} ms CPU/step, "
                  f"untracked step {median(base)*1e3:6.1f} ms CPU: direct ratio median {median(rs):.4f} "
                  f"(reps: {' '.join(f'{x:.4f}' for x in rs)})", flush=True)

if __name__ == '__main__':
    p = argparse.ArgumentParser(); p.add_argument('--reps', type=int, default=5); p.add_argument('--arch', default='efficientnet_lite0')
    main(p.parse_args())
