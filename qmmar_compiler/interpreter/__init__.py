"""The CPU interpreter: op implementations, the SPMD driver, communicators, .npz I/O."""
