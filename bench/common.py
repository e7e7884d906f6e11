"Helpers shared by the bench scripts: machine description, medians, RSS, timing callbacks."
import os, platform, resource, statistics, sys, time, warnings
warnings.filterwarnings('ignore')
import torch
from fastai.callback.core import Callback, CancelValidException

# BENCH_THREADS=n pins torch's intra-op threads (bench/threads.py shows why on a CPU shared with other work)
if os.environ.get('BENCH_THREADS'): torch.set_num_threads(int(os.environ['BENCH_THREADS']))

def machine() -> str:
    "One line describing this machine and its torch setup."
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    ram = int(next(l.split()[1] for l in open('/proc/meminfo') if l.startswith('MemTotal')))/2**20
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPU(s), {cpu}, {ram:.0f} GiB RAM, python {platform.python_version()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} intra-op / {torch.get_num_interop_threads()} inter-op threads), "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")

def median(xs): return statistics.median(xs)

def timed(f):
    "(wall, CPU) seconds of `f()`: CPU time does not grow when other work shares the cores."
    t, c = time.perf_counter(), time.process_time(); f(); return time.perf_counter() - t, time.process_time() - c

def print_rep(r, res):
    "One line: the latest (wall, CPU) time of every case in `res` (name -> list of pairs), in ms."
    print(f"rep {r}: " + '  '.join(f"{k} {v[-1][0]*1e3:.0f} ms" for k, v in res.items()), flush=True)

def print_medians(res):
    "Per case in `res`: median wall and CPU time over the repetitions, in ms."
    w = max(map(len, res))
    for k, v in res.items():
        print(f"{k:{w}s} wall median {median([a for a, _ in v])*1e3:7.1f} ms, CPU time median {median([c for _, c in v])*1e3:7.1f} ms "
              f"over {len(v)} reps")

def rss_mb() -> float:
    "Current resident set size of this process, in MB."
    return int(open('/proc/self/statm').read().split()[1])*os.sysconf('SC_PAGE_SIZE')/2**20

def peak_rss_mb() -> float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024

class StepStart(Callback):
    "Starts the clocks (wall and this process's CPU time) of a training batch before any other callback runs."
    order = -10_000
    def __init__(self): self.times, self.cpu = [], []
    def before_batch(self):
        if self.training: self.t0, self.c0 = time.perf_counter(), time.process_time()

class StepEnd(Callback):
    "Stops it after every other callback's `after_batch` (the tracker's included)."
    order = 10_000
    def __init__(self, start): self.start = start
    def after_batch(self):
        if self.training:
            self.start.times.append(time.perf_counter() - self.start.t0)
            self.start.cpu.append(time.process_time() - self.start.c0)

def step_timer():
    "Two callbacks timing each training batch, start to end; wall times land in `cbs[0].times`, CPU times in `cbs[0].cpu`."
    s = StepStart(); return [s, StepEnd(s)]

class NoValidate(Callback):
    "Skip validation (bench runs time training steps only)."
    def before_validate(self): raise CancelValidException()

def header(title: str, argv=None):
    env = f"BENCH_THREADS={os.environ['BENCH_THREADS']} " if os.environ.get('BENCH_THREADS') else ''
    print(f"# {title}\n# {machine()}\n# command: {env}python {' '.join(argv or sys.argv)}", flush=True)
