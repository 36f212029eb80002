"""milr: test-time latent reasoning (MILR) for unified multimodal image generators.

    import milr_core as milr
    result = milr.generate("a photo of three triangles", steps=10)
    result.image.save("three-triangles.png")

Importing this package loads no model and no torch; the functions below import what they need.
"""

from importlib import metadata as _metadata

from .api import Generation, Interrupted, generate, load_backbone, load_critic
from .bench.api import bench
from .config import RunConfig
from .errors import MilrError

try:
    __version__ = _metadata.version("milr-core")
except _metadata.PackageNotFoundError:  # imported from a checkout that is not installed
    __version__ = "0+unknown"

__all__ = ["Generation", "Interrupted", "MilrError", "RunConfig", "__version__", "bench", "generate", "load_backbone",
           "load_critic"]
