import os, tempfile, warnings
from pathlib import Path
import pytest

SHARED = Path(__file__).resolve().parents[1].parent/'shared'/'data'

# Every test run gets its own cache of drawn/resized images, so tests never depend on earlier runs.
os.environ.setdefault('FINETUNE_LAB_CACHE', tempfile.mkdtemp(prefix='finetune_lab_test_cache_'))
warnings.filterwarnings('ignore', message='.*torch.jit.script.*')

def shared_folder(name):
    "A folder of ../shared/data, or skip the test saying why."
    p = SHARED/name
    if not (p/'images').is_dir(): pytest.skip(f"{p} not found: the shared real Pets images ship beside the repo (../shared/data)")
    return p

@pytest.fixture
def pets_sample(): return shared_folder('pets_sample')

@pytest.fixture
def pets_more(): return shared_folder('pets_more')
