"""vocalmix: automatic mixing of a lead vocal with a backing track."""

from . import jit_cache as _jit_cache

__version__ = "0.1.0"

# Before any submodule imports numba: its compiled kernels go to the user's cache folder.
_jit_cache.configure()
