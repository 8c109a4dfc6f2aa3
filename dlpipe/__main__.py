"""`python -m dlpipe` = the `dlpipe` command."""

from dlpipe.pipelines.cli import main

main()
