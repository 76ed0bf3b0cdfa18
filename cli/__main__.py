import sys

from alimi_cli.main import main

sys.exit(main())
