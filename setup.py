"""Builds the Python package ecr with CMake: the extension ecr._ecr and the package files come
from `cmake --install --component python` (python/CMakeLists.txt), so pip installs exactly what
the CMake route installs. Used through `pip install --no-build-isolation .` (README.md, Python).

CMake builds in build-python/ (Release, CPU only); ECR_CMAKE_ARGS adds options, e.g.
ECR_CMAKE_ARGS="-DECR_NATIVE=ON".
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
BUILD = ROOT / "build-python"


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = BUILD / "cmake"
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), *generator, "-DCMAKE_BUILD_TYPE=Release",
                        "-DECR_BUILD_PYTHON=ON", "-DECR_BUILD_TESTS=OFF", "-DECR_BUILD_BENCHMARKS=OFF",
                        "-DECR_BUILD_EXAMPLES=OFF", "-DECR_WITH_CUDA=OFF", f"-DPython_EXECUTABLE={sys.executable}",
                        "-DECR_PYTHON_INSTALL_DIR=.", *shlex.split(os.environ.get("ECR_CMAKE_ARGS", ""))],
                       check=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "ecr_python", "-j", str(os.cpu_count() or 1)],
                       check=True)
        # The package as CMake installs it, copied over the one setuptools laid out.
        package = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        with tempfile.TemporaryDirectory() as staging:
            subprocess.run(["cmake", "--install", str(build), "--component", "python", "--prefix", staging],
                           check=True)
            shutil.copytree(Path(staging) / "ecr", package, dirs_exist_ok=True)


def version():
    text = (ROOT / "CMakeLists.txt").read_text()
    return re.search(r"project\(ecr VERSION ([0-9.]+)", text).group(1)


BUILD.mkdir(exist_ok=True)
setup(
    version=version(),
    packages=["ecr"],
    package_dir={"ecr": "python/ecr"},
    ext_modules=[CMakeExtension("ecr._ecr")],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
    # Keep setuptools' scratch files out of build/, which the CMake builds own.
    options={"build": {"build_base": str(BUILD / "setuptools")}, "egg_info": {"egg_base": str(BUILD)}},
)
