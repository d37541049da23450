"""python3 -m xapi_emulator [options]: run the XAPI emulator in dom0."""

from xapi_emulator.server import main

raise SystemExit(main())
