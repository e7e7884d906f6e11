"""P4: how fast the Lab panel shows a run it has already trained, and redraws after a view-only change.

A `Lab` (tiny synthetic runs, efficientnet_lite0) trains config A and config B (B differs in freeze_epochs). Then,
each repetition, timed from the click/change to the handler's return (the image widget holds the new PNG):
- reshow:      controls set back to A (from B), Run pressed: A is shown from the in-session cache.
- view change: with 'heatmap only' shown, the colour map changes (the heatmap is redrawn; the PNG memo is cleared
               first so every repetition draws, as a never-seen combination would).
- view memo:   the same change again without clearing the memo (the figure was drawn before).
- new session: a fresh Lab on the same run_dir, Run pressed: A loads from disk and its report is drawn once.
Controls are set back to B between reshows. Target: <= 0.2 s.

Usage: python bench/lab_reshow.py [--reps 5]
"""
import argparse, tempfile
from common import header, timed, print_rep, print_medians
from finetune_lab.lab import Lab

TINY = dict(source='synthetic', arch='efficientnet_lite0', n_images=24, size=64, bs=8, freeze_epochs=1, epochs=1)

def train(lab, **ctl):
    for k, v in ctl.items(): lab.controls[k].value = v
    lab.run_button.click(); lab.wait()
    assert lab.error is None and lab.n_trained, lab.status.value

def main(a):
    header("P4 Lab: re-show a cached run / redraw after a view change")
    d = tempfile.mkdtemp(prefix='fl_lab_')
    lab = Lab(run_dir=d, **TINY)
    train(lab, freeze_epochs=1); train(lab, freeze_epochs=2)
    assert lab.n_trained == 2, lab.n_trained
    res = {k: [] for k in ('reshow', 'view change', 'view memo', 'new session')}
    cm = lab.view['cmap']
    for r in range(a.reps):
        lab.controls['freeze_epochs'].value = 2; lab.run_button.click()  # B on screen (cached)
        def reshow(): lab.controls['freeze_epochs'].value = 1; lab.run_button.click()
        res['reshow'].append(timed(reshow))
        assert lab.n_trained == 2 and 'cache' in lab.status.value, lab.status.value
        lab.view['figure'].value = 'heatmap'
        nxt = cm.options[(cm.options.index(cm.value) + 1) % len(cm.options)]
        lab._pngs.clear()
        res['view change'].append(timed(lambda: setattr(cm, 'value', nxt)))
        nxt2 = cm.options[(cm.options.index(cm.value) + 1) % len(cm.options)]
        cm.value = nxt2; cm.value = nxt  # both drawn now
        res['view memo'].append(timed(lambda: setattr(cm, 'value', nxt2)))
        lab.view['figure'].value = 'report'
        lab2 = Lab(run_dir=d, **TINY)
        res['new session'].append(timed(lab2.run_button.click))
        assert lab2.n_trained == 0 and lab2.error is None, lab2.status.value
        print_rep(r, res)
    print_medians(res)

if __name__ == '__main__':
    p = argparse.ArgumentParser(); p.add_argument('--reps', type=int, default=5)
    main(p.parse_args())
