"""lit_cifar's SLURM launcher plugin (hydra/launcher=slurm)."""
