"""`python -m xen_test_vm`."""

import sys

from .cli import main

sys.exit(main())
