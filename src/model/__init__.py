"""What trains: the CNN builders (`cnn`), training-time augmentation (`augment/`), and the
convolutions rewritten as matrix products for the batched engine (`matmul_conv`)."""
