"""Plot rendering time for a big history: 1,000 steps x ~150 layers, drawn and saved to PNG.

`fake_history` (fine_tune: 1 frozen + 1 unfrozen epoch of 500 steps) on a deep resnet-shaped layer table with
~150 layers. Timed per repetition, interleaved: every figure of `finetune_lab.plots` (the heatmap with rows per layer
and per block, phase bars, LRs, losses, update ratio, the report, and plot_compare of 2 and 3 such histories), each
from the call to the PNG bytes (`fig_to_png` = matplotlib's `savefig`, Agg, dpi 100); `build_report` builds the report
without drawing it; `recolour_heatmap` is the Lab's colour-map change (`HeatmapPNG.png`). Targets: a report <= 1.0 s,
a re-colour <= 0.2 s. Wall time and this process's CPU time are both reported (CPU time does not grow when other work
shares the cores). Each repetition draws a different history (seed, base_lr, lr_mult and head_depth vary).

Usage: python bench/plot_render.py [--reps 5] [--steps 1000] [--layers 150]
"""
import argparse
from common import header, timed, print_rep, print_medians
from finetune_lab.testing import fake_history, _resnet_layers
from finetune_lab.plots import (plot_heatmap, plot_phase_bars, plot_lrs, plot_losses, plot_update_ratio, plot_report,
                                plot_compare, fig_to_png, HeatmapPNG)

def blocks_for(n_layers):
    "Blocks per stage (and head depth) whose layer table is closest to `n_layers` rows."
    cands = [((3, b2, b3, 3), hd) for b2 in range(1, 20) for b3 in range(1, 40) for hd in (1, 2)]
    return min(cands, key=lambda c: (abs(len(_resnet_layers(*c)) - n_layers), abs(c[0][2] - 2.5*c[0][1]), c[1]))

def main(a):
    header("Plot rendering: plot_heatmap / plot_report of a big history, to PNG")
    blocks, hd = blocks_for(a.layers)
    # one history per repetition (+1 for the warm-up), each with other numbers and knobs
    hs = [fake_history('fine_tune', steps_per_epoch=a.steps//2, blocks=blocks, head_depth=hd + s % 2, seed=s,
                            base_lr=(1e-3, 2e-3, 3e-3, 5e-3)[s % 4], lr_mult=(100, 10, 30)[s % 3]) for s in range(a.reps + 3)]
    h = hs[0]
    print(f"# histories: {h.change.shape[0]} steps x {h.change.shape[1]}-{hs[1].change.shape[1]} layers "
          f"(blocks {blocks}, head_depth {hd}-{hd+1}), {len(hs)} of them", flush=True)
    cases = dict(heatmap_layer=lambda i: plot_heatmap(hs[i]), heatmap_block=lambda i: plot_heatmap(hs[i], group_by='block'),
                 phase_bars=lambda i: plot_phase_bars(hs[i]), lrs=lambda i: plot_lrs(hs[i]), losses=lambda i: plot_losses(hs[i]),
                 update_ratio=lambda i: plot_update_ratio(hs[i]), report=lambda i: plot_report(hs[i]),
                 compare_2=lambda i: plot_compare(hs[i:i+2]), compare_3=lambda i: plot_compare(hs[i:i+3]),
                 build_report=lambda i: plot_report(hs[i]))
    recolour = HeatmapPNG(plot_heatmap(h))
    def png(k, i):
        if k == 'build_report': return cases[k](i)   # building the figure only, not drawing it
        return fig_to_png(cases[k](i))
    cases['recolour_heatmap'] = lambda i: None
    def png_or_recolour(k, i): return recolour.png(('magma', 'viridis')[i % 2]) if k == 'recolour_heatmap' else png(k, i)
    for k in cases: png_or_recolour(k, 0)  # warm-up: fonts, colormaps
    res = {k: [] for k in cases}
    for r in range(a.reps):
        for k in (list(cases) if r % 2 == 0 else list(cases)[::-1]):
            res[k].append(timed(lambda: png_or_recolour(k, r + 1)))
        print_rep(r, res)
    print_medians(res)

if __name__ == '__main__':
    p = argparse.ArgumentParser(); p.add_argument('--reps', type=int, default=5)
    p.add_argument('--steps', type=int, default=1000); p.add_argument('--layers', type=int, default=150)
    main(p.parse_args())
