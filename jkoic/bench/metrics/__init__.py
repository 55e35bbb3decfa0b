"""Error measures of the paper (Appendix E.2 and E.3)."""

from .energy import *  # noqa: F403
from .energy import __all__  # noqa: F401
