import sys
from pathlib import Path

from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

# No example may fail for the time it took: hypothesis's default deadline (200 ms an example)
# is wall time, which a loaded machine (load average 20) exceeds in any test.
settings.register_profile("qmmar", deadline=None)
settings.load_profile("qmmar")
