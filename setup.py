"""Which folders the package is made of; the metadata is in pyproject.toml.

The repository keeps three browsable folders at its top that install *inside* the package, so
that site-packages holds one name, `foundation`, and nothing generic:

    recipes/         ->  foundation.recipes    (named procedures: demo, delta, ensemble, ...)
    data_pipelines/  ->  foundation.pipelines  (offline tools: labelling, converters, selection)
    hydra_configs/   ->  foundation.configs    (the Hydra config tree `foundation train` composes)

setuptools maps them (package_dir) for wheels and for `pip install -e` alike. The packages are
found here rather than listed in pyproject.toml, so a new sub-folder needs no edit.
"""

from setuptools import find_packages, setup

MAPPED = {"foundation.recipes": "recipes", "foundation.pipelines": "data_pipelines",
          "foundation.configs": "hydra_configs"}

packages = find_packages(include=["foundation", "foundation.*"])
for name, folder in MAPPED.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=MAPPED)
