"""Build finetune_lab's bundled mini Oxford-IIIT Pet set from ../shared/data/pets_more.

    python tools/build_mini_pets.py [--src ../shared/data/pets_more] [--size 128] [--quality 85]

Every image of pets_more (all 37 breeds, the natural cat:dog ratio of ~1:2, fastbook's file names) is shrunk to
`size` x `size` (Lanczos) and saved as a JPEG; a MANIFEST.tsv with each file's sha256 and the licence notice go
next to the images. Run it again and you get the same files (same Pillow, same bytes; the manifest says which).
"""
import argparse, hashlib, io, shutil
from pathlib import Path
import PIL
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT/'finetune_lab'/'pets_mini'
LIMIT = 8_000_000  # bytes: the budget for the whole bundled set

LICENSE = """# The bundled mini Oxford-IIIT Pet set

`images/` holds {n} photos ({n_cat} cats of 12 breeds, {n_dog} dogs of 25 breeds) from the **Oxford-IIIT Pet
Dataset**: O. M. Parkhi, A. Vedaldi, A. Zisserman and C. V. Jawahar, "Cats and Dogs", IEEE Conference on Computer
Vision and Pattern Recognition (CVPR), 2012. https://www.robots.ox.ac.uk/~vgg/data/pets/

Licence: **Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0)**,
https://creativecommons.org/licenses/by-sa/4.0/. These files are adaptations, shared under the same licence:
a redistributor resized the original photos to 299x299 (aspect ratio not kept); finetune_lab's
`tools/build_mini_pets.py` shrank them to {size}x{size} and saved them as JPEG (quality {quality}) with Pillow {pil}.
File names are the dataset's own: a name starting with an upper-case letter is a cat (fastbook's `is_cat`).

`MANIFEST.tsv` lists each file with its sha256. The code of finetune_lab is Apache-2.0; these images are not: if
you share them, or anything made from them, keep this notice and the CC BY-SA 4.0 terms.
"""

def shrink(src:Path, size:int, quality:int) -> bytes:
    with Image.open(src) as im: im = im.convert('RGB').resize((size, size), Image.LANCZOS)
    b = io.BytesIO(); im.save(b, 'JPEG', quality=quality, optimize=True)
    return b.getvalue()

def main():
    global DEST
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--src', type=Path, default=ROOT.parent/'shared'/'data'/'pets_more')
    p.add_argument('--size', type=int, default=128)
    p.add_argument('--quality', type=int, default=85)
    p.add_argument('--dest', type=Path, default=DEST, help="where to write (default: the package's pets_mini)")
    a = p.parse_args()
    DEST = a.dest
    files = sorted((a.src/'images').glob('*.jpg'))
    if not files: raise SystemExit(f"No .jpg files in {a.src/'images'}: point --src at pets_more.")
    if DEST.exists(): shutil.rmtree(DEST)
    (DEST/'images').mkdir(parents=True)
    rows, total = [], 0
    for f in files:
        data = shrink(f, a.size, a.quality)
        (DEST/'images'/f.name).write_bytes(data)
        total += len(data)
        rows.append(f"{f.name}\t{'cat' if f.name[0].isupper() else 'dog'}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}")
    (DEST/'MANIFEST.tsv').write_text('filename\tspecies\tbytes\tsha256\n' + '\n'.join(rows) + '\n')
    n_cat = sum(f.name[0].isupper() for f in files)
    (DEST/'LICENSE.md').write_text(LICENSE.format(n=len(files), n_cat=n_cat, n_dog=len(files)-n_cat, size=a.size,
                                                  quality=a.quality, pil=PIL.__version__))
    print(f"{len(files)} images ({n_cat} cats), {total/1e6:.2f} MB in {DEST}")
    if total > LIMIT: raise SystemExit(f"{total/1e6:.2f} MB is over the {LIMIT/1e6:g} MB budget: lower --size or --quality.")

if __name__ == '__main__': main()
