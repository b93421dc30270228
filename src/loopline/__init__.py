"""loopline: the machine-learning lifecycle, end to end, from a laptop to a cluster.

Importing this package is cheap: heavy libraries load inside the functions that use them.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
