"""digit_recogniser: k-fold CNN ensembles for Kaggle's Digit Recognizer (MNIST as CSV)."""
