"""A run seen by a person: the end-of-run summary (`summary`), the report page and its figures
(`report`, `figures`), every run at a glance (`runs`), and Kaggle: submit, wait, scores
(`submit`, through the kaggle CLI: `kaggle_cli`)."""
