"""Parts suggestions for technicians: which parts an upcoming job will need (see model.py)."""
