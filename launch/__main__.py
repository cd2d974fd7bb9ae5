"""`python -m launch SUBCOMMAND [options] -- experiments.MODULE [flags]` (see launch.cli)."""
from launch import cli

if __name__ == "__main__":
  cli.main()
