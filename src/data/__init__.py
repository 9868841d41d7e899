"""The competition's files: find, read and validate train.csv and test.csv (`load`), and where
they are inside a Kaggle notebook (`notebook`)."""
