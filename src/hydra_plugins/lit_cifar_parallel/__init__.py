"""lit_cifar's Hydra launcher plugin (hydra/launcher=parallel)."""
