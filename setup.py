"""Package layout: ``dynlab`` and ``simulators``, plus the hydra configs of the
top-level ``configs/`` folder shipped as the data package ``dynlab.configs`` so
that an installed (non-editable) dynlab finds them."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["dynlab", "dynlab.*", "simulators", "simulators.*"])
    + ["dynlab.configs"],
    package_dir={"dynlab.configs": "configs"},
    package_data={"dynlab.configs": ["*.yaml", "**/*.yaml"]},
    include_package_data=False,
)
