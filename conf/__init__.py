"""The systems shipped with fti (one YAML each). The folder is conf/ at the top of the project; setup.py installs it
as the package fti.conf, so the wheel carries the configs."""
