"""wgfpgan: bulk face restoration for photo archives (GFPGAN generator + Wasserstein critic).

This top-level package owns only what every layer shares without pulling in torch:
the command-line dispatcher (`wgfpgan.cli`), settings (`wgfpgan.config`) and storage I/O.
"""

__version__ = "0.1.0"
