"""Deploying a stage to AWS: its template (`template.py`, `monitoring.py`), its settings (`stages.py`) and the
commands `make package`, `make deploy` and `make destroy` run (`commands.py`)."""
