"""nbdev's processing of the notebooks for the docs, the step `nbdev-docs` runs before Quarto renders:

    python tools/proc_nbs.py        # about a minute; exit 1 (with the failing cell) if a notebook cannot be processed

nbdev executes every exported cell and every cell that contains an import (so each notebook's imports sit in cells of
their own, and nothing trains here). `nbdev-proc-nbs` does the same but first insists on installing Quarto, which this
machine cannot; anyone with Quarto gets a working `nbdev-docs`. CI runs this script so the processing stays passing."""
from nbdev.quarto import proc_nbs

if __name__ == '__main__':
    print(f"processed into {proc_nbs(n_workers=1, force=True)}")
