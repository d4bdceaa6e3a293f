"""`python -m repro` and the `repro` console script (`repro.__main__:main`).

`repro --version` (`-V`) is answered here, before typer and the commands are imported;
everything else goes to the typer app (repro.cli.main).
"""

from __future__ import annotations

import sys

VERSION_FLAGS = (["--version"], ["-V"])


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args in VERSION_FLAGS:  # the one answer that needs no command line parser
        from repro import __version__

        sys.stdout.write(f"repro {__version__}\n")
        raise SystemExit(0)
    from repro.cli import main as run

    run(args)


if __name__ == "__main__":
    main()
