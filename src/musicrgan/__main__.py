import sys

from musicrgan.cli import main

sys.exit(main())
