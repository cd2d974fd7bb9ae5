"""Getting the `experiments.*` CLIs onto hardware: `python -m launch local|multihost|tpu|slurm`.

Also the shell entry points: setup_env.sh (the pinned environment), main.sh (the main
command), test.sh; tpu_worker.sh runs on each TPU worker.
"""
