"""The layer API on the compiled path: the same names, signatures and caches as fastnn.reference, built on
fastnn.kernels (Numba) with GEMMs left to BLAS. A name missing here has no kernel: backend 'auto' then runs the
reference and 'jit' raises. Importing this package imports numba but compiles nothing.
"""

from .activations import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .sandwich import *  # noqa: F401,F403
