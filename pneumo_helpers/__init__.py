"""pneumo_helpers: the logic behind the pneumo notebooks (chest X-ray pneumonia detection).

One module per concern: ``config`` (the run), ``images`` (reading a file), ``obtain`` (the
dataset and its manifest), ``scrub`` (bad files, duplicates, patient splits), ``generators``
(input pipeline), ``balance`` (class rebalancing), ``models`` and ``transfer``, ``train``,
``evaluate``, ``explain``, ``plots`` (the shared look and the data figures), ``model_plots``
(figures of a model's outputs) and ``cli``; docs/layout.md lists them all. Heavy modules
(TensorFlow) are not imported here, so ``import pneumo_helpers`` stays fast.
"""

from .config import RunConfig

__version__ = "0.1.0"
__all__ = ["RunConfig", "__version__"]
