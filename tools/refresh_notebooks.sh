#!/usr/bin/env bash
# Re-execute the notebooks (their `slow` cells too, on the real photos the package ships) and write the outputs back:
# the committed outputs are the docs. Run it before committing a change that alters what a notebook shows.
#   tools/refresh_notebooks.sh                  every notebook (~15 min on 2 CPU cores)
#   tools/refresh_notebooks.sh nbs/lesson.ipynb  one notebook
set -euo pipefail
cd "$(dirname "$0")/.."
nbdev-export
if [ $# -eq 0 ]; then set -- nbs; fi
for p in "$@"; do nbdev-test "$p" --flags slow --save --n-workers 1; done
python tools/tidy_outputs.py   # no library warnings (machine paths) or saved widget state in the docs
nbdev-clean
