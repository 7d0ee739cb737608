"""pneumo_helpers: the logic behind the pneumo notebooks (chest X-ray pneumonia detection).

One module per concern: ``config`` (the run), ``images`` (reading a file), ``data`` (dataset,
manifest, scrub), ``generators`` (input pipeline), ``balance`` (class rebalancing), ``models``,
``train``, ``evaluate``, ``explain``, ``plots`` and ``cli``. Heavy modules (TensorFlow) are not
imported here, so ``import pneumo_helpers`` stays fast.
"""

from .config import RunConfig

__version__ = "0.1.0"
__all__ = ["RunConfig", "__version__"]
