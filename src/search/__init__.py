"""The Optuna search: the study and its space (`study`), its storage (`storage`), the worker
loop (`worker`), one trial in its own process (`trial`), and the study's plots (`plots`)."""
