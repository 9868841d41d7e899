"""digit_recogniser: k-fold CNN ensembles for Kaggle's Digit Recognizer (MNIST as CSV)."""


class UserError(Exception):
    """Bad input or flags: the message names the file, row or column and what to do."""
