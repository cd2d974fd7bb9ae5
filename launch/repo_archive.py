"""A gzipped tar of the repository as a fresh clone would have it, to copy to remote hosts.

Git's view decides: tracked files plus untracked ones that are not ignored, so
`.venv`, runs and datasets stay behind. Outside a git checkout every file is taken
except those folders.
"""
from __future__ import annotations

import os
import subprocess
import tarfile

SKIPPED_OUTSIDE_GIT = {".git", ".venv", "runs", ".tfds-test", "__pycache__"}


def repo_files(root: str) -> list[str]:
  try:
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, check=True).stdout
    names = [n for n in listing.decode().split("\0") if n]
    return sorted(n for n in names if os.path.isfile(os.path.join(root, n)))
  except (OSError, subprocess.CalledProcessError):
    return sorted(_walk(root))


def _walk(root: str):
  for folder, subfolders, files in os.walk(root):
    subfolders[:] = [d for d in subfolders if d not in SKIPPED_OUTSIDE_GIT]
    for name in files:
      yield os.path.relpath(os.path.join(folder, name), root)


def pack(root: str, archive: str) -> int:
  """Writes `archive`; returns the number of files in it."""
  files = repo_files(root)
  os.makedirs(os.path.dirname(os.path.abspath(archive)), exist_ok=True)
  with tarfile.open(archive, "w:gz") as tar:
    for name in files:
      tar.add(os.path.join(root, name), arcname=name, recursive=False)
  return len(files)
