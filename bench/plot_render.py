"""Plot rendering time for a big history: 1,000 steps x ~150 layers, drawn and saved to PNG.

`synthetic_history` (fine_tune: 1 frozen + 1 unfrozen epoch of 500 steps) on a deep resnet-shaped layer table with
~150 layers. Timed per repetition, interleaved: every figure of `finetune_lab.plots` (the heatmap with rows per layer
and per block, phase bars, LRs, losses, update ratio, the report, and plot_compare of 2 and 3 such histories), each
from the call to the PNG bytes (`fig_to_png`, Agg, dpi 100). Target: < 0.5 s per figure of one history.
Wall time and this process's CPU time are both reported (the CPU time does not grow when other work shares the cores).

Usage: python bench/plot_render.py [--reps 5] [--steps 1000] [--layers 150]
"""
import argparse
from common import header, timed, print_rep, print_medians
from finetune_lab.plots import (synthetic_history, plot_heatmap, plot_phase_bars, plot_lrs, plot_losses, plot_update_ratio,
                                plot_report, plot_compare, fig_to_png, _resnet_layers)

def blocks_for(n_layers):
    "Blocks per stage (and head depth) whose layer table is closest to `n_layers` rows."
    cands = [((3, b2, b3, 3), hd) for b2 in range(1, 20) for b3 in range(1, 40) for hd in (1, 2)]
    return min(cands, key=lambda c: (abs(len(_resnet_layers(*c)) - n_layers), abs(c[0][2] - 2.5*c[0][1]), c[1]))

def main(a):
    header("Plot rendering: plot_heatmap / plot_report of a big history, to PNG")
    blocks, hd = blocks_for(a.layers)
    h = synthetic_history('fine_tune', steps_per_epoch=a.steps//2, blocks=blocks, head_depth=hd)
    print(f"# history: {h.change.shape[0]} steps x {h.change.shape[1]} layers (blocks {blocks}, head_depth {hd})", flush=True)
    h2, h3 = (synthetic_history('fine_tune', steps_per_epoch=a.steps//2, blocks=blocks, head_depth=hd, seed=s) for s in (1, 2))
    cases = dict(heatmap_layer=lambda: plot_heatmap(h), heatmap_block=lambda: plot_heatmap(h, group_by='block'),
                 phase_bars=lambda: plot_phase_bars(h), lrs=lambda: plot_lrs(h), losses=lambda: plot_losses(h),
                 update_ratio=lambda: plot_update_ratio(h), report=lambda: plot_report(h),
                 compare_2=lambda: plot_compare([h, h2]), compare_3=lambda: plot_compare([h, h2, h3]))
    for f in cases.values(): fig_to_png(f())  # warm-up: fonts, colormaps
    res = {k: [] for k in cases}
    for r in range(a.reps):
        for k in (list(cases) if r % 2 == 0 else list(cases)[::-1]):
            res[k].append(timed(lambda: fig_to_png(cases[k]())))
        print_rep(r, res)
    print_medians(res)

if __name__ == '__main__':
    p = argparse.ArgumentParser(); p.add_argument('--reps', type=int, default=5)
    p.add_argument('--steps', type=int, default=1000); p.add_argument('--layers', type=int, default=150)
    main(p.parse_args())
