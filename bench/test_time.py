"""How long the README's test command takes, part by part (target: under 300 s on 2 quiet cores).

The command is read from README.md (the line .ci/run runs) and split at its `&&`; each part runs from the repo root
in a fresh process, one after the other, as a newcomer runs it. The `pip install` part is skipped when finetune_lab
is already installed in editable mode from this checkout (pass --install to time it anyway). --slow also times the
slow tier .ci/run adds (`python -m pytest -q -m slow`, `nbdev-test --n-workers 1 --flags slow`).

Wall time counts what the other work on the machine takes from the cores; CPU time (this part's processes, user +
system) does not, and the load average before and after each part says how busy the machine was.

--details also reports what is slow inside each part: nbdev-test's cells over 5 s (`--cell-timing-min 5`) and pytest's
tests over 3 s (`--durations=30 --durations-min=3`); they only add lines to the output, the same cells and tests run.

Usage: python bench/test_time.py [--install] [--slow] [--details]
"""
import argparse, os, re, resource, subprocess, sys, time
from pathlib import Path
from common import header

ROOT = Path(__file__).resolve().parents[1]
SLOW = ['python -m pytest -q -m slow', 'nbdev-test --n-workers 1 --flags slow']
DETAILS = {'nbdev-test': ' --cell-timing-min 5', 'python -m pytest': ' --durations=30 --durations-min=3'}

def with_details(cmd: str) -> str:
    "`cmd` with the flags that make it report its slow cells or tests."
    return cmd + next((v for k, v in DETAILS.items() if cmd.startswith(k)), '')

def readme_parts() -> list[str]:
    "The README's test command (the line .ci/run greps), split into its parts."
    line = next(l for l in (ROOT/'README.md').read_text().splitlines() if re.match(r'pip install -e "\.\[dev\]"', l))
    return [p.strip() for p in line.split('&&')]

def installed_here() -> bool:
    "Is finetune_lab importable from this checkout (an editable install)?"
    r = subprocess.run([sys.executable, '-c', 'import finetune_lab; print(finetune_lab.__file__)'], capture_output=True,
                       text=True, cwd='/')
    return r.returncode == 0 and Path(r.stdout.strip()).resolve().is_relative_to(ROOT)

def timed(cmd: str, details: bool = False) -> dict:
    "Run `cmd` in a shell from the repo root; its wall and CPU seconds, exit status and the load around it."
    load0, c0 = os.getloadavg()[0], resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(with_details(cmd) if details else cmd, shell=True, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall, c1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
    if details: print('\n'.join(l for l in r.stdout.splitlines() if re.search(r'\.ipynb:\S+: [0-9.]+s$|^[0-9.]+s (call|setup|teardown) ', l)))
    tail = r.stdout.strip().splitlines()[-1:] or ['']
    return dict(cmd=cmd, wall=wall, cpu=(c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime), rc=r.returncode,
                load=f"{load0:.1f} -> {os.getloadavg()[0]:.1f}", last=tail[0][-70:])

def main(a):
    header("README test command: time of each part")
    parts = readme_parts()
    print(f"# README: {' && '.join(parts)}", flush=True)
    rows = []
    for p in parts + (SLOW if a.slow else []):
        if p.startswith('pip install') and not a.install and installed_here():
            print(f"skipped (already installed from this checkout; --install times it): {p}", flush=True); continue
        rows.append(timed(p, a.details))
        r = rows[-1]
        print(f"{r['wall']:7.1f} s wall {r['cpu']:7.1f} s CPU  rc {r['rc']}  load {r['load']}  {p}  | {r['last']}", flush=True)
    readme = [r for r in rows if r['cmd'] in parts]
    print("\n| part | wall | CPU | exit | load average (1 min) before -> after |\n| --- | --- | --- | --- | --- |")
    for r in rows: print(f"| `{r['cmd']}` | {r['wall']:.0f} s | {r['cpu']:.0f} s | {r['rc']} | {r['load']} |")
    print(f"| **README command, timed parts** | **{sum(r['wall'] for r in readme):.0f} s** | "
          f"{sum(r['cpu'] for r in readme):.0f} s | {max((r['rc'] for r in readme), default=0)} | |")
    print(f"# load average now {' '.join(f'{x:.1f}' for x in os.getloadavg())}; target: the README command under 300 s "
          f"on 2 quiet cores (load average under 1.5 from other work)")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--install', action='store_true', help="time the pip install part even when already installed")
    ap.add_argument('--slow', action='store_true', help="also time the slow tier .ci/run runs")
    ap.add_argument('--details', action='store_true', help="also list the notebook cells over 5 s and the tests over 3 s")
    main(ap.parse_args())
