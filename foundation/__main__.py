import sys

from foundation.cli.main import main

sys.exit(main())
