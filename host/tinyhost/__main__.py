"""`python -m tinyhost`: the same as the `tinyhost` command."""
import sys

from tinyhost.cli import main

sys.exit(main())
