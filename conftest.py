"""Environment for every pytest run, unit tests and nbval alike: offline, quick profile,
no spinning OpenMP threads. Set before torch is imported; nbval's kernels (started with
--nbval-current-env) inherit it, so a bare `pytest --nbval notebooks/` behaves like
`make test`."""
import os

for key, value in {"LAB_PROFILE": "quick", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                   "OMP_WAIT_POLICY": "PASSIVE", "PYTHONHASHSEED": "0"}.items():
    os.environ.setdefault(key, value)
