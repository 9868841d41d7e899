"""Where a run writes: atomic files (`files`), every output place checked before training
(`checks`), the run folder (`run_folder`), and the submission file (`submission`)."""
