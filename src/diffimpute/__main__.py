"""``python -m diffimpute``: the ``diffimpute`` command, also as ``torchrun -m diffimpute fit ...``."""

from diffimpute.cli.main import cli

cli(prog_name="diffimpute")
