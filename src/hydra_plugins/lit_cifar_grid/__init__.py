"""lit_cifar's Hydra sweeper plugin (hydra/sweeper=grid, the default)."""
