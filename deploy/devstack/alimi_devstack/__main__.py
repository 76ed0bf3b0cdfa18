"""``python -m alimi_devstack``: the whole system on this machine (``make run``)."""

import sys

from alimi_devstack import main

sys.exit(main())
