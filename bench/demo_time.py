"""P3: wall time and peak RSS of `finetune-lab demo` (the console script, a fresh process, default settings).

Each repetition starts `finetune-lab demo --out <temp dir>` (output to a pipe) as a new process, once with the default source
(synthetic here: no real Pets cached) and once with FINETUNE_LAB_PETS pointing at real images, interleaved.
Wall time is measured around the whole process (interpreter start and imports included); peak RSS is that child's
ru_maxrss from os.wait4. The image cache (drawn/resized images) is warm after the first run; `--cold` adds one run
per source with an empty FINETUNE_LAB_CACHE (what a student's very first demo costs). Target: <= 60 s.

Usage: python bench/demo_time.py [--reps 5] [--pets /work/shared/data/pets_more] [--cold] [--quiet]
"""
import argparse, os, shutil, subprocess, tempfile, time
from pathlib import Path
from common import header, median

def demo(env_extra:dict, quiet=False, cache=None):
    "(wall seconds, peak RSS MB, exit code) of one `finetune-lab demo` process."
    out = tempfile.mkdtemp(prefix='fl_demo_')
    env = {**os.environ, **env_extra}
    if cache: env['FINETUNE_LAB_CACHE'] = cache
    cmd = [shutil.which('finetune-lab'), 'demo', '--out', out] + (['--quiet'] if quiet else [])
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    shutil.rmtree(out, ignore_errors=True)
    rc = os.waitstatus_to_exitcode(status)
    if rc: print(log.decode()[-2000:])
    return wall, ru.ru_maxrss/1024, rc

def main(a):
    header("P3 finetune-lab demo: wall time and peak RSS (fresh process each)")
    env0 = {k: v for k, v in os.environ.items() if k != 'FINETUNE_LAB_PETS'}
    os.environ.clear(); os.environ.update(env0)
    sources = {'synthetic (default)': {}, f'real ({a.pets})': {'FINETUNE_LAB_PETS': a.pets}}
    if a.cold:
        for name, env in sources.items():
            cache = tempfile.mkdtemp(prefix='fl_cache_')
            w, m, rc = demo(env, a.quiet, cache)
            shutil.rmtree(cache, ignore_errors=True)
            print(f"cold cache  {name:40s} wall {w:6.1f} s  peak RSS {m:6.0f} MB  rc {rc}", flush=True)
    for env in sources.values(): demo(env, a.quiet)  # make sure the image cache is warm
    res = {k: [] for k in sources}
    for r in range(a.reps):
        for name in (list(sources) if r % 2 == 0 else list(sources)[::-1]):
            w, m, rc = demo(sources[name], a.quiet)
            res[name].append((w, m))
            print(f"rep {r}  {name:40s} wall {w:6.1f} s  peak RSS {m:6.0f} MB  rc {rc}", flush=True)
    for name, v in res.items():
        print(f"{name}: wall median {median([w for w, _ in v]):.1f} s, peak RSS median {median([m for _, m in v]):.0f} MB "
              f"over {len(v)} reps (walls: {' '.join(f'{w:.1f}' for w, _ in v)})")

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--reps', type=int, default=5)
    p.add_argument('--pets', default=str(Path(__file__).resolve().parents[2]/'shared'/'data'/'pets_more'))
    p.add_argument('--cold', action='store_true'); p.add_argument('--quiet', action='store_true', help='pass --quiet to the demo')
    main(p.parse_args())
