"""Running a study's commands: sweep points in parallel, on a local venv or in containers."""
