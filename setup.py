"""Build hook: everything else is in setup.cfg.

RL Zoo has no plugin entry points, so sb3-metasaclag installs a ``.pth`` file and a tiny top-level module
(``zoo_hook/``) that register its algorithms when RL Zoo is imported, and ships the repository's top-level
``hyperparams/`` inside the package. A declarative ``data_files`` entry would install the ``.pth`` for ``pip install .``
but not for ``pip install -e .``; this ``build_py`` override covers both: in editable mode it writes the two hook files
into the directory that becomes the editable wheel (the files are then in the wheel's RECORD, so ``pip uninstall``
removes them).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
HOOK_FILES = [ROOT / "zoo_hook" / "_sb3_metasaclag_zoo_hook.py", ROOT / "zoo_hook" / "sb3_metasaclag_zoo.pth"]
HYPERPARAMS = sorted((ROOT / "hyperparams").glob("*.yml"))


class BuildPyWithZooHook(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            # The package is served from the source tree (sb3_metasaclag.zoo finds ../hyperparams itself); only the
            # hook files must be real files in site-packages. `install_lib` is the editable wheel's content directory.
            target = Path(self.get_finalized_command("install").install_lib)
        else:
            target = Path(self.build_lib)
            hyperparams_dir = target / "sb3_metasaclag" / "hyperparams"
            hyperparams_dir.mkdir(parents=True, exist_ok=True)
            for path in HYPERPARAMS:
                shutil.copyfile(path, hyperparams_dir / path.name)
        target.mkdir(parents=True, exist_ok=True)
        for path in HOOK_FILES:
            shutil.copyfile(path, target / path.name)


setup(cmdclass={"build_py": BuildPyWithZooHook})
