"""conda's environment.yml as PyPI requirements: its pip: section as it is, conda packages
that exist on PyPI under their PyPI names, python=X.Y as the study's Python; conda-only
packages (compilers, C libraries, R) are an error naming them, or left out with a note."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from repro.env.requirements import Declared, LocalSource, display, read_requirements_text, read_text
from repro.errors import ConfigError

# conda package -> PyPI project, where the names differ (docs/environments.md lists them).
RENAMES = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "torchvision-cpu": "torchvision",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "libopencv": "opencv-python",
    "pytables": "tables",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "python-graphviz": "graphviz",
    "pyqt": "PyQt5",
    "pyqt5": "PyQt5",
    "pyyaml": "PyYAML",
    "ruamel_yaml": "ruamel.yaml",
    "tensorflow-gpu": "tensorflow",
    "tensorflow-base": "tensorflow",
    "jupyter_core": "jupyter-core",
    "jupyter_client": "jupyter-client",
    "prompt_toolkit": "prompt-toolkit",
    "typing_extensions": "typing-extensions",
    "importlib_metadata": "importlib-metadata",
    "python-kaleido": "kaleido",
    "pillow-simd": "pillow",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "xgboost-cpu": "xgboost",
    "netcdf4": "netCDF4",
    "gdal": "GDAL",
    "ipython_genutils": "ipython-genutils",
    "jupyterlab_widgets": "jupyterlab-widgets",
    "nb_conda_kernels": "",
    "numpy-base": "numpy",
    "blas-devel": "",
    "seaborn-base": "seaborn",
    "dask-core": "dask",
    "bokeh-base": "bokeh",
    "altair-base": "altair",
    "geopandas-base": "geopandas",
    "spacy-base": "spacy",
    "cython": "Cython",
    "docker-py": "docker",
    "redis-py": "redis",
    "python-kubernetes": "kubernetes",
    "python-flatbuffers": "flatbuffers",
    "pysoundfile": "SoundFile",
    "python-sounddevice": "sounddevice",
    "python-annoy": "annoy",
    "python-symengine": "symengine",
    "python-xxhash": "xxhash",
    "python-fastjsonschema": "fastjsonschema",
    "pytorch_geometric": "torch_geometric",
    "pvlib-python": "pvlib",
    "keras-gpu": "keras",
    "pyct-core": "pyct",
}
# Packages conda ships that are not Python distributions (or have no PyPI equivalent): never
# looked up on PyPI by these names, where an unrelated project may own them.
CONDA_ONLY = frozenset(
    {
        "blas",
        "bzip2",
        "c-ares",
        "ca-certificates",
        "cairo",
        "cmake-no-system",
        "compilers",
        "conda",
        "conda-build",
        "conda-forge-pinning",
        "cudatoolkit",
        "cuda-toolkit",
        "cuda-nvcc",
        "cuda-version",
        "cudnn",
        "curl",
        "cxx-compiler",
        "c-compiler",
        "dbus",
        "expat",
        "ffmpeg",
        "fftw",
        "fontconfig",
        "fortran-compiler",
        "freetype",
        "gcc",
        "gcc_linux-64",
        "geos",
        "gettext",
        "gfortran",
        "gfortran_linux-64",
        "git",
        "glib",
        "graphviz",
        "gsl",
        "gst-plugins-base",
        "gstreamer",
        "gxx",
        "gxx_linux-64",
        "hdf5",
        "icu",
        "jpeg",
        "krb5",
        "ld_impl_linux-64",
        "lz4-c",
        "make",
        "mkl-include",
        "mkl_fft",
        "mkl_random",
        "nccl",
        "ncurses",
        "nodejs",
        "nomkl",
        "openblas",
        "openjdk",
        "openssl",
        "pandoc",
        "pango",
        "pcre",
        "pcre2",
        "pkg-config",
        "proj",
        "qt",
        "qt-main",
        "readline",
        "sqlite",
        "tk",
        "vc",
        "vs2015_runtime",
        "xz",
        "yaml",
        "zeromq",
        "zlib",
        "zstd",
        "gmp",
        "mpfr",
        "libblas",
        "libcblas",
        "liblapack",
        "libgcc",
        "libgcc-ng",
        "libgfortran",
        "libgfortran-ng",
        "libstdcxx-ng",
        "libffi",
        "libpng",
        "libtiff",
        "libuuid",
        "libxml2",
        "libzlib",
        "libiconv",
        "libnetcdf",
        "libgdal",
        "libopenblas",
        "cudatoolkit-dev",
        "magma",
        "pytorch-cuda",
        "cupti",
        "nvidia",
        "rust",
        "go",
        "julia",
        "perl",
        "ruby",
        "texlive-core",
        "tectonic",
        "imagemagick",
        "poppler",
        "ghostscript",
        "wget",
        "unzip",
        "tar",
        "sed",
        "grep",
        "coreutils",
        "bash",
    }
)
_CONDA_ONLY = frozenset(canonicalize_name(n) for n in CONDA_ONLY)
# Prefixes of conda-only families: R packages, conda's own metapackages, system libraries.
CONDA_ONLY_PREFIXES = ("r-", "_", "lib", "cuda-", "bioconductor-", "perl-")
# Python projects whose conda names start like a system library's: locked from PyPI.
PYTHON_LIB_NAMES = frozenset({"librosa", "libcst", "libsass", "libpysal", "libarchive-c"})
_RENAMES = {canonicalize_name(k): v for k, v in RENAMES.items()}
SPEC = re.compile(
    r"^(?:(?P<channel>[\w.\-/]+)::)?(?P<name>[A-Za-z0-9_.\-]+)"
    r"(?P<version>\s*[=<>!~][^\s\[]*|\s+[^\s\[]+)?(?P<rest>.*)$"
)

Policy = Literal["error", "skip"]


def _pip_version(version: str) -> str:
    """A conda version constraint as a pip specifier ('=1.2' is conda's fuzzy '1.2.*')."""
    version = version.strip()
    if not version:
        return ""
    clauses = []
    for clause in version.split(","):
        clause = clause.strip()
        if clause.lstrip("=") in ("*", ""):
            continue  # "numpy=*": any version
        if "|" in clause:
            raise ValueError(clause)
        if clause.startswith("=") and not clause.startswith("=="):
            # conda: "=1.2" and "=1.2=build" mean 1.2.*; the build string has no pip meaning
            number = clause[1:].split("=")[0]
            clauses.append(f"=={number.rstrip('.*')}.*" if number else "")
        elif clause.startswith(("==", ">=", "<=", "!=", "~=", ">", "<")):
            op = re.match(r"^(==|>=|<=|!=|~=|>|<)", clause)
            if op is None:  # pragma: no cover - startswith above guarantees a match
                raise ValueError(clause)
            number = clause[op.end() :].split("=")[0].strip()
            clauses.append(f"{op.group(1)}{number}")
        else:
            number = clause.split("=")[0]
            clauses.append(f"=={number}" if "*" in number else f"=={number.rstrip('.')}.*")
    return ",".join(c for c in clauses if c)


def conda_only(name: str) -> bool:
    lowered = name.lower()
    if lowered in PYTHON_LIB_NAMES:
        return False
    return (
        lowered in CONDA_ONLY
        or canonicalize_name(lowered) in _CONDA_ONLY
        or lowered == "r"
        or lowered.startswith(CONDA_ONLY_PREFIXES)
    )


def read_environment_yml(path: Path, project: Path, policy: Policy = "error") -> Declared:
    rel = display(path, project)
    try:
        data = yaml.safe_load(read_text(path))
    except UnicodeDecodeError:
        raise ConfigError(f"{rel} is not UTF-8 text", hint="save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigError(
            f"{rel} is not valid YAML{at}: {problem}",
            hint="check its indentation (conda env create reads it as YAML)",
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{rel}: expected a mapping with name, channels and dependencies")
    deps: Any = data.get("dependencies") or []
    if not isinstance(deps, list):
        raise ConfigError(f"{rel}: dependencies must be a list")
    requirements: list[str] = []
    options: list[str] = []
    local: list[LocalSource] = []
    files = [rel]
    translated: dict[str, str] = {}
    left_out: list[str] = []
    notes: list[str] = []
    python: str | None = None
    for i, dep in enumerate(deps):
        where = f"{rel}: dependencies[{i}]"
        if isinstance(dep, dict):
            if set(dep) != {"pip"} or not isinstance(dep["pip"], list):
                raise ConfigError(f"{where}: only a pip: list may stand here, got {dep!r}"[:200])
            pip = _read_pip_section(dep["pip"], path, project)
            requirements += pip.requirements
            options += [o for o in pip.options if o not in options]
            local += pip.local
            files += [f for f in pip.files if f != rel]
            continue
        if not isinstance(dep, str | int | float):
            raise ConfigError(f"{where}: expected a package spec, got {dep!r}"[:200])
        spec = str(dep).strip()
        # "scipy >= 1.2" and "pandas >=1.2, <2" are the same specs without the spaces
        match = SPEC.match(re.sub(r"\s*(===|==|>=|<=|!=|~=|[<>]|,)\s*", r"\1", spec))
        if not match or match.group("rest").strip().startswith("["):
            raise ConfigError(
                f"{where}: cannot read the conda spec {spec!r}",
                hint="write it as NAME, NAME=VERSION or NAME>=VERSION",
            )
        name = match.group("name")
        version = (match.group("version") or "").strip()
        lowered = canonicalize_name(name)
        if lowered == "python":
            python = _python_version(version, where)
            continue
        if lowered in ("pip", "setuptools", "wheel"):
            continue  # the environment's own tooling: the installer provides it
        pypi = _RENAMES.get(lowered, name)
        if pypi == "" or (conda_only(lowered) and lowered not in RENAMES):
            if policy == "skip":
                left_out.append(name)
                continue
            raise ConfigError(
                f"{rel}: {name} is a conda-only package with no PyPI equivalent",
                hint="remove it, install it through apt.txt, or capture with --skip-conda-only "
                '([environment] conda_only = "skip") to leave such packages out',
            )
        try:
            specifier = _pip_version(version)
        except ValueError:
            raise ConfigError(
                f"{where}: cannot translate the conda version {version!r} of {name}",
                hint="pin one version range (conda's '|' alternatives have no pip form)",
            ) from None
        requirement = f"{pypi}{specifier}"
        try:
            Requirement(requirement)
        except InvalidRequirement:
            raise ConfigError(
                f"{where}: cannot translate the conda spec {spec!r} into a pip requirement "
                f"({requirement!r})",
                hint="write it as NAME, NAME=VERSION or NAME>=VERSION",
            ) from None
        if pypi != name or specifier != version:
            translated[spec] = requirement
        requirements.append(requirement)
    if left_out:
        notes.append(f"{rel}: conda-only packages left out: {', '.join(left_out)}")
    return Declared(
        requirements=tuple(requirements),
        options=tuple(options),
        local=tuple(local),
        python=python,
        files=tuple(dict.fromkeys(files)),
        translated=translated,
        left_out=tuple(left_out),
        notes=tuple(notes),
    )


def _python_version(version: str, where: str) -> str | None:
    text = version.strip().lstrip("=")
    match = re.match(r"^(\d+)\.(\d+)", text)
    if match and not version.strip().startswith((">", "<", "!", "~")):
        return f"{match.group(1)}.{match.group(2)}"
    # A range or a bare name pins nothing (repo2docker then takes its default Python).
    return None


def _read_pip_section(lines: list[Any], path: Path, project: Path) -> Declared:
    """The pip: list is a requirements file written inline (-r, -e . and URLs included)."""
    text = "\n".join(str(line) for line in lines) + "\n"
    rel = f"{display(path, project)} pip:"
    read = read_requirements_text(text, rel, path.parent, project, frozenset({path.resolve()}))
    files = tuple(f for f in read.files if f != rel)
    return Declared(read.requirements, read.options, None, read.local, files=files)
