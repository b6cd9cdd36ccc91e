import sys

from deploy.commands import main

sys.exit(main(sys.argv[1:]))
