"""``python -m ctbench.cli``: the command line."""

from ctbench.cli import main

main()
