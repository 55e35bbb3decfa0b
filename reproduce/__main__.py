"""``python -m reproduce``: list, run or smoke-test a reproduction profile (:func:`reproduce.runner.main`)."""

import sys

from .runner import main

sys.exit(main())
