"""`python -m agentrl ...` and `torchrun ... -m agentrl train ...`: the `agentrl` command."""

import sys

from agentrl.cli import main

sys.exit(main())
