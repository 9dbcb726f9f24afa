"""Helpers shared by the test modules and the benchmark (bench/).

No test module imports another: what several of them (or bench/) need lives here, and the
fixtures live in tests/conftest.py.

- ``paths``: the repository and its cache folder.
- ``combos``: the option combinations of the template (read from copier.yml); not in the
  wheel, since only the tests and the benchmark use them.
- ``matrix``: the combinations the matrix tests run, and their markers.
- ``rendering``: rendering the template and checking the rendered tree.
- ``envs``: cached environments holding a generated project's dependencies, and the
  environment (variables, local servers) its tools run in.
- ``validators``: the checks of a generated project's shipped files (pyproject.toml,
  Dockerfile, compose.yaml, the CI workflow).
- ``running``: running a step of a project's checks and reading pytest's summary.
- ``git``: git with a fixed identity, and a template copied into a repository of its own.
- ``wheels``: building sessionforge's wheel and installing it into a fresh virtualenv.
- ``databases``: databases of their own on the local servers, and a probe of a generated app.
- ``vulture_whitelist``: the names of generated code that vulture must not call dead.
"""
