"""A second pair of eyes: a share of resolutions re-reviewed blind by a second person, agreement
measured (kappa.py), disagreements adjudicated by a lead queue (config.py, selection.py, store.py)."""
