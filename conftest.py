"""pytest's set-up for the whole repository: where nbval finds the lessons' output sanitizer.

pyproject.toml passes `--nbval-sanitize-with=lessons/nbval_sanitize.cfg`, a path that nbval opens relative to
the working directory; run from elsewhere (`pytest /path/to/course/lessons/...`), it is read from the repository.
"""

import os


def pytest_configure(config):
    path = getattr(config.option, "nbval_sanitize_with", None)
    if path and not os.path.isabs(path) and not os.path.exists(path):
        config.option.nbval_sanitize_with = str(config.rootpath / path)
