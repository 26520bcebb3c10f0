"""Background sweeps: the sweeper loop (sweeper.py) and its work on deadlines (deadlines.py), retention."""
